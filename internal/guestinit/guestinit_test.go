package guestinit

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire/boot"
)

// TestMain lets the test binary stand in for the agent that startAgent
// runs: as "provium-agent" it writes what it was given to $AGENT_TEST_OUT.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == boot.AgentName {
		sid, _ := unix.Getsid(0)
		out := []string{"sid=" + strconv.Itoa(sid), "pid=" + strconv.Itoa(os.Getpid()), "args=" + strings.Join(os.Args[1:], " ")}
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "PROVIUM_") {
				out = append(out, kv)
			}
		}
		os.WriteFile(os.Getenv("AGENT_TEST_OUT"), []byte(strings.Join(out, "\n")), 0o644)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestLoadModules(t *testing.T) {
	list := filepath.Join(t.TempDir(), "modules.order")
	os.WriteFile(list, []byte("/provium/modules/virtio.ko\n\n# comment\n  /provium/modules/virtio_pci.ko.xz  \n/provium/modules/broken.ko\n/provium/modules/vsock.ko\n"), 0o644)
	var loaded []string
	loadModules(list, func(path string) error {
		loaded = append(loaded, path)
		if strings.Contains(path, "broken") {
			return errors.New("bad module")
		}
		return nil
	})
	want := []string{"/provium/modules/virtio.ko", "/provium/modules/virtio_pci.ko.xz", "/provium/modules/broken.ko", "/provium/modules/vsock.ko"}
	if !slices.Equal(loaded, want) {
		t.Errorf("loaded %q, want %q: in order, going on after a failure", loaded, want)
	}

	loadModules(filepath.Join(t.TempDir(), "missing"), func(path string) error {
		t.Errorf("loaded %s without a list", path)
		return nil
	})
}

func TestModuleFlags(t *testing.T) {
	for path, want := range map[string]int{
		"a.ko":     0,
		"a.ko.xz":  unix.MODULE_INIT_COMPRESSED_FILE,
		"a.ko.zst": unix.MODULE_INIT_COMPRESSED_FILE,
		"a.ko.gz":  unix.MODULE_INIT_COMPRESSED_FILE,
	} {
		if got := moduleFlags(path); got != want {
			t.Errorf("moduleFlags(%q) = %d, want %d", path, got, want)
		}
	}
}

func TestLoadModuleErrorsNameThePath(t *testing.T) {
	err := loadModule("/no/such/module.ko")
	if err == nil || !strings.Contains(err.Error(), "/no/such/module.ko") {
		t.Errorf("loadModule of a missing file: %v", err)
	}
}

func TestRealInit(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "init")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o644)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	selfLink := filepath.Join(dir, "self")
	os.Symlink(self, selfLink)

	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{exe, true},
		{plain, false},
		{dir, false},
		{filepath.Join(dir, "missing"), false},
		{selfLink, false},
	} {
		if got, ok := realInit(tc.path); ok != tc.ok || (ok && got != tc.path) {
			t.Errorf("realInit(%s) = %q, %v; want ok=%v", tc.path, got, ok, tc.ok)
		}
	}
}

func TestStartAgent(t *testing.T) {
	out := filepath.Join(t.TempDir(), "agent")
	t.Setenv("AGENT_TEST_OUT", out)
	t.Setenv("PROVIUM_EXAMPLE", "kept")
	pid, err := startAgent("was killed by signal 9")
	if err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("agent stand-in: %s", describe(ws))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(string(b), "\n")
	for _, want := range []string{
		"sid=" + strconv.Itoa(pid), // a session of its own
		"pid=" + strconv.Itoa(pid),
		"PROVIUM_EXAMPLE=kept", // init's environment, as it is
		"args=--restarted=was killed by signal 9",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("agent saw %q, missing %q", got, want)
		}
	}
}

func TestEndOf(t *testing.T) {
	if got := endOf(unix.WaitStatus(3 << 8)); got != "had exited with status 3" {
		t.Errorf("endOf(exit 3) = %q", got)
	}
	if got := endOf(unix.WaitStatus(9)); got != "was killed by signal 9" {
		t.Errorf("endOf(SIGKILL) = %q", got)
	}
}

func TestDescribe(t *testing.T) {
	if got := describe(unix.WaitStatus(3 << 8)); got != "exit status 3" {
		t.Errorf("describe(exit 3) = %q", got)
	}
	if got := describe(unix.WaitStatus(9)); got != "signal: killed" {
		t.Errorf("describe(SIGKILL) = %q", got)
	}
}
