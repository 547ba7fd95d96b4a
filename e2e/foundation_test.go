package e2e

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readTestdataDir returns the files under testdata/dir as project path ->
// content, for NewEnv.
func readTestdataDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	root := filepath.Join("testdata", dir)
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// luaBytes is data as a Lua string literal, every byte escaped.
func luaBytes(b []byte) string {
	var s strings.Builder
	s.WriteByte('"')
	for _, c := range b {
		fmt.Fprintf(&s, "\\%03d", c)
	}
	s.WriteByte('"')
	return s.String()
}

// oversizeFrame is a frame header as the guest agent would write it, with
// a valid CRC, announcing a payload of length bytes (internal/wire/frame.go:
// magic, epoch, channel, length, flags, 3 zero bytes, CRC-32C of the first
// 20 bytes; all little-endian).
func oversizeFrame(length uint32) []byte {
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0x4d565250)
	binary.LittleEndian.PutUint32(h[4:], 0) // any epoch: the length is checked first
	binary.LittleEndian.PutUint32(h[8:], 1) // the main channel
	binary.LittleEndian.PutUint32(h[12:], length)
	binary.LittleEndian.PutUint32(h[20:], crc32.Checksum(h[:20], crc32.MakeTable(crc32.Castagnoli)))
	return h
}

// fileLine returns the line of provium's output for a test file.
func fileLine(t *testing.T, out, file string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^  \S*` + regexp.QuoteMeta(file) + ` \.\.\. .*$`).FindString(out)
	if m == "" {
		t.Errorf("no result line for %s in:\n%s", file, out)
	}
	return m
}

func noQEMULeft(t *testing.T, e *Env) {
	t.Helper()
	if p := qemuProcesses(t, e.Cache); len(p) > 0 {
		t.Errorf("QEMU processes left after the run: %v", p)
	}
}

// foundationProject is the project of testdata/foundation with the host
// files its tests inject and attach.
func foundationProject(t *testing.T) map[string]string {
	files := readTestdataDir(t, "foundation")
	files["inject.txt"] = "injected at boot\n"
	payload := make([]byte, 1000)
	for i := range payload {
		payload[i] = byte(i)
	}
	files["payload.bin"] = string(payload)
	// A 2 MiB raw disk: a header line, 0xa5 at 1 MiB + 7, zeros elsewhere.
	disk := make([]byte, 2<<20)
	copy(disk, "PROVIUM-DISK-01\n")
	disk[1<<20+7] = 0xa5
	files["disk.img"] = string(disk)
	files["frame.lua"] = "return " + luaBytes(oversizeFrame(1<<20)) + "\n"
	return files
}

// TestFoundationVM runs every agent operation and the error paths that
// need a running guest: ops.lua (exec, files, boot files and disks, state
// errors, shutdown), agent_gone.lua (the guest powers off under a call)
// and protocol.lua (the guest writes junk, then an oversize frame, into
// the agent's transport; then vm:kill).
func TestFoundationVM(t *testing.T) {
	e := NewEnv(t, foundationProject(t))

	r := e.Run("test", "tests/")
	r.MustFail(t, "FAIL: 2 passed, 1 failed")
	out := r.Stdout + r.Stderr

	for file, n := range map[string]string{"ops.lua": "13 tests", "protocol.lua": "3 tests"} {
		if l := fileLine(t, out, file); !strings.Contains(l, "ok ("+n) {
			t.Errorf("%s: want ok with %s, got %q", file, n, l)
		}
	}
	// agent_gone.lua passes its sub-tests, then fails on purpose with an
	// uncaught call on the powered-off VM.
	if l := fileLine(t, out, "agent_gone.lua"); !strings.Contains(l, "FAIL") {
		t.Errorf("agent_gone.lua should fail: %s", l)
	}
	for _, want := range []string{
		"guest powers off during a call ... ok",
		"the next call fails too ... ok",
		"vm:syscall on minimal#",
		"--- console (last ",
		"agent-gone-marker",
		"agent_gone.lua:", // the failing line
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The failing file's log is kept and holds the guest's last words.
	if m := regexp.MustCompile(`agent_gone\.lua\s+→ (\S+)`).FindStringSubmatch(out); m == nil {
		t.Errorf("no log named for agent_gone.lua")
	} else if log, err := os.ReadFile(m[1]); err != nil {
		t.Errorf("log of agent_gone.lua: %v", err)
	} else if !strings.Contains(string(log), "agent-gone-marker") {
		t.Errorf("log of agent_gone.lua lacks the console output:\n%s", log)
	}
	if strings.Contains(out, "internal error") || strings.Contains(out, "panic") {
		t.Errorf("provium reported an internal error or panic:\n%s", out)
	}
	noQEMULeft(t, e)

	v := e.Run("version")
	if v.Code != 0 || !strings.Contains(v.Stdout, "provium") {
		t.Errorf("provium version: exit %d, %q", v.Code, v.Stdout)
	}
}

// TestFoundationConfigErrors covers the errors found before or at boot
// that need no running guest: a missing kernel, a provium.toml that does
// not parse, and an unknown profile.
func TestFoundationConfigErrors(t *testing.T) {
	boot := `
local vm = provium.create("%s")
vm:boot({memory = "256M"})
vm:exec("true")
`
	t.Run("missing kernel", func(t *testing.T) {
		e := NewEnv(t, map[string]string{"tests/boot.lua": fmt.Sprintf(boot, "default")})
		missing := filepath.Join(e.Dir, "no-such-kernel", "vmlinuz")
		e.Extra = append(e.Extra, "PROVIUM_KERNEL="+missing)
		r := e.Run("test", "tests/")
		r.MustFail(t, "boot.lua ... FAIL", "PROVIUM_KERNEL", missing, "FAIL: 0 passed, 1 failed")
		noQEMULeft(t, e)
	})

	t.Run("provium.toml does not parse", func(t *testing.T) {
		e := NewEnv(t, map[string]string{
			"provium.toml":   "[profile.broken\nkernel = \"x\"\n",
			"tests/boot.lua": fmt.Sprintf(boot, "broken"),
		})
		r := e.Run("test", "tests/")
		if r.Code != 2 {
			t.Errorf("want exit 2 for a configuration error, got %d", r.Code)
		}
		if !strings.Contains(r.Stdout+r.Stderr, filepath.Join(e.Dir, "provium.toml")) {
			t.Errorf("the error does not name provium.toml:\n%s%s", r.Stdout, r.Stderr)
		}
	})

	t.Run("unknown profile", func(t *testing.T) {
		e := NewEnv(t, map[string]string{
			"provium.toml": `
[profile.alpha]
kernel = "kernel/bzImage"
initrd = "kernel/initrd.img"

[profile.beta]
kernel = "kernel/bzImage"
rootfs = "kernel/disk.img"
`,
			"tests/boot.lua": fmt.Sprintf(boot, "gamma"),
		})
		r := e.Run("test", "tests/")
		r.MustFail(t, "boot.lua ... FAIL", `"gamma"`, "alpha", "beta", "FAIL: 0 passed, 1 failed")
		noQEMULeft(t, e)
	})
}
