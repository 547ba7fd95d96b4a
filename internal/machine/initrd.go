package machine

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/provium/provium/internal/cache"
	"github.com/provium/provium/internal/initramfs"
	"github.com/provium/provium/internal/kmod"
	"github.com/provium/provium/internal/profile"
	"github.com/provium/provium/internal/wire/boot"
)

// AgentBinary is the host file injected into guests as init and agent:
// $PROVIUM_AGENT, else the running executable (which is provium itself).
func AgentBinary() (string, error) {
	if p := os.Getenv("PROVIUM_AGENT"); p != "" {
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locate the agent binary: %w", err)
	}
	return exe, nil
}

var modulesCache sync.Map // modules dir and set -> []string

// needs is the hardware beyond the transport a guest has drivers loaded
// for.
type needs struct {
	disks, net bool
}

func needsOf(s Shape) needs { return needs{disks: len(s.Disks) > 0, net: len(s.NICs) > 0} }

// guestModules resolves the modules the guest must load: the transport's,
// plus virtio_blk when disks are attached and virtio_net for network
// cards. Each module loaded costs boot time under emulation, so nothing
// else is included.
func guestModules(dir string, hw needs, transport boot.Transport) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	key := fmt.Sprintf("%s|%+v|%s", dir, hw, transport)
	if v, ok := modulesCache.Load(key); ok {
		return v.([]string), nil
	}
	names := kmod.VirtioSerialModules
	if transport == boot.Vsock {
		names = kmod.VsockModules
	}
	if hw.disks {
		names = append(append([]string{}, names...), kmod.DiskModules...)
	}
	if hw.net {
		names = append(append([]string{}, names...), kmod.NetModules...)
	}
	memo := filepath.Join(cache.Modules(), cache.Key(modulesMemoVersion, dir, strings.Join(names, " "))[:32])
	if mods, ok := readModulesMemo(memo, dir); ok {
		modulesCache.Store(key, mods)
		return mods, nil
	}
	mods, err := kmod.Resolve(dir, names...)
	if err != nil {
		return nil, fmt.Errorf("guest modules: %w", err)
	}
	writeModulesMemo(memo, dir, mods)
	modulesCache.Store(key, mods)
	return mods, nil
}

// modulesMemoVersion changes when the memo's layout or what it stands
// for does.
const modulesMemoVersion = "modules-memo/1"

// A module tree's resolution is remembered in the cache: resolving walks
// the whole tree and reads every module's metadata (decompressing it,
// for a host's .ko.xz), which a command would otherwise pay before its
// first VM starts. The memo holds the fingerprint of modules.builtin and
// of every module file it names, and stands while they are unchanged: a
// module's dependencies are in its own file, and what is built in is in
// modules.builtin.

// readModulesMemo returns the modules the memo at path remembers for the
// tree dir, if it still holds.
func readModulesMemo(path, dir string) ([]string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) == 0 || lines[0] != builtinFingerprint(dir) {
		return nil, false
	}
	var mods []string
	for _, l := range lines[1:] {
		mod, fp, ok := strings.Cut(l, "\t")
		if !ok {
			return nil, false
		}
		if now, err := cache.Fingerprint(mod); err != nil || now != fp {
			return nil, false
		}
		mods = append(mods, mod)
	}
	return mods, true
}

// writeModulesMemo remembers mods for the tree dir at path. A cache
// that cannot be written to only costs the next command a resolution.
func writeModulesMemo(path, dir string, mods []string) {
	lines := []string{builtinFingerprint(dir)}
	for _, m := range mods {
		fp, err := cache.Fingerprint(m)
		if err != nil {
			return
		}
		lines = append(lines, m+"\t"+fp)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return
	}
	if cache.WriteFile(path, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
		return err
	}) == nil {
		cache.Prune(filepath.Dir(path), "*", cache.Limit{MaxEntries: keepModulesMemos}, path)
	}
}

// keepModulesMemos bounds the remembered resolutions: a few for each
// kernel a user boots.
const keepModulesMemos = 256

// builtinFingerprint is the fingerprint of the tree's modules.builtin,
// or "none" without one.
func builtinFingerprint(dir string) string {
	fp, err := cache.Fingerprint(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return "none"
	}
	return fp
}

// baseInitrd returns an initramfs with the profile's own archive followed by
// the shim (agent and transport modules). It is cached by content identity,
// so boots after the first cost nothing here.
func baseInitrd(p *profile.Profile, hw needs, transport boot.Transport) (string, error) {
	agent, err := AgentBinary()
	if err != nil {
		return "", err
	}
	if err := checkStatic(agent); err != nil {
		return "", err
	}
	mods, err := guestModules(p.ModulesDir, hw, transport)
	if err != nil {
		return "", err
	}
	// A derived archive, keyed by what it is made of: the versions
	// (fingerprints) of the agent, the modules and the profile's archive.
	parts := []string{"shim/1"}
	fp, err := cache.Fingerprint(agent)
	if err != nil {
		return "", fmt.Errorf("agent binary: %w", err)
	}
	parts = append(parts, agent, fp)
	for _, m := range mods {
		fp, err := cache.Fingerprint(m)
		if err != nil {
			return "", fmt.Errorf("guest modules: %w", err)
		}
		parts = append(parts, m, fp)
	}
	switch {
	case p.InitrdFrom != "":
		// An archive Provium generated is named by what it was made
		// from, and its fingerprint changes at every use (the cache
		// touches it): its name is what says which it is.
		parts = append(parts, "generated initrd", p.Initrd)
	case p.Initrd != "":
		fp, err := cache.Fingerprint(p.Initrd)
		if err != nil {
			return "", fmt.Errorf("profile %s: initrd: %w", p.Name, err)
		}
		parts = append(parts, "initrd", p.Initrd, fp)
	}
	return initramfs.Cached(cache.Initramfs(), "initrd", cache.Key(parts...), func(w io.Writer) error {
		if p.Initrd != "" {
			if err := appendFile(w, p.Initrd); err != nil {
				return err
			}
		}
		return initramfs.WriteShim(w, initramfs.Shim{Agent: agent, Modules: mods})
	})
}

// appendFile copies a whole file and pads to a 512-byte boundary: the
// kernel expects each concatenated archive to start aligned.
func appendFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, f)
	if err != nil {
		return fmt.Errorf("copy %s: %w", path, err)
	}
	if pad := (512 - n%512) % 512; pad > 0 {
		_, err = w.Write(make([]byte, pad))
	}
	return err
}

// bootInitrd returns the initramfs for one boot: the cached base, plus an
// archive of the boot's files when there are any.
func bootInitrd(p *profile.Profile, dir string, opts BootOptions, shape Shape) (string, error) {
	base, err := baseInitrd(p, needsOf(shape), shape.Transport)
	files := opts.Files
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return base, nil
	}
	path := filepath.Join(dir, "initrd")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := appendFile(f, base); err != nil {
		return "", err
	}
	if err := initramfs.WriteFiles(f, files); err != nil {
		return "", fmt.Errorf("boot files: %w", err)
	}
	return path, f.Close()
}

var staticChecked sync.Map // path -> error

// checkStatic refuses a dynamically linked agent: the guest has no libc for
// it, and the kernel's "error -2" from init would explain nothing.
func checkStatic(agent string) error {
	if v, ok := staticChecked.Load(agent); ok {
		err, _ := v.(error)
		return err
	}
	err := initramfs.CheckStatic(agent)
	if err != nil {
		err = fmt.Errorf("the agent binary must be statically linked; rebuild provium with CGO_ENABLED=0 (go install): %w", err)
	}
	staticChecked.Store(agent, err)
	return err
}
