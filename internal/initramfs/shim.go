package initramfs

import (
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/provium/provium/internal/wire/boot"
)

// Shim is what Provium adds to every guest initramfs.
type Shim struct {
	Agent   string   // host path of the provium binary, installed as boot.InitPath
	Modules []string // host paths of kernel modules, in load order
}

// WriteShim writes the shim archive: the agent as boot.InitPath, the modules
// under boot.ModulesDir with their load order in boot.ModulesList, and the mount
// points the agent needs (/proc /sys /dev /tmp), which are harmless if the
// archive before it has them too. Files are streamed, not buffered.
func WriteShim(w io.Writer, s Shim) error {
	a := newArchive(w)
	for _, d := range []string{boot.ShimDir, boot.ModulesDir, "/proc", "/sys", "/dev", "/tmp"} {
		if err := a.dir(d); err != nil {
			return fmt.Errorf("shim: %w", err)
		}
	}
	if err := a.loadableFile(boot.InitPath, s.Agent, 0o755); err != nil {
		return fmt.Errorf("shim: agent: %w", err)
	}
	var order strings.Builder
	seen := map[string]string{}
	for _, m := range s.Modules {
		base := filepath.Base(m)
		if prev, dup := seen[base]; dup {
			return fmt.Errorf("shim: modules %s and %s have the same file name", prev, m)
		}
		seen[base] = m
		guest := path.Join(boot.ModulesDir, base)
		if err := a.hostFile(guest, m, 0o644); err != nil {
			return fmt.Errorf("shim: module: %w", err)
		}
		order.WriteString(guest + "\n")
	}
	if err := a.file(boot.ModulesList, 0o644, int64(order.Len()), strings.NewReader(order.String())); err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	return a.close()
}
