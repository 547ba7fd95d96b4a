package kmod

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// fileDepends returns the modules the module file at path depends on.
func fileDepends(path string) ([]string, error) {
	data, err := readModule(path)
	if err != nil {
		return nil, err
	}
	deps, err := elfDepends(data)
	if err != nil {
		return nil, fmt.Errorf("kernel module %s: %w", path, err)
	}
	return deps, nil
}

// maxModinfo bounds the .modinfo section read: real ones are a few KiB,
// and the section's size comes from the file.
const maxModinfo = 1 << 20

// elfDepends returns the dependencies a module's ELF image lists.
func elfDepends(data []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	if sec.Size > maxModinfo || sec.Size > uint64(len(data)) {
		return nil, fmt.Errorf(".modinfo of %d bytes is too large", sec.Size)
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo: %w", err)
	}
	return Depends(info), nil
}

// readModule returns the ELF bytes of a module file, decompressed if needed.
func readModule(path string) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(path, ".ko.xz"):
		tool = "xz"
	case strings.HasSuffix(path, ".ko.zst"):
		tool = "zstd"
	default:
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read kernel module: %w", err)
		}
		return data, nil
	}
	// The standard library has no xz or zstd decoder; the tools are on
	// every distribution that compresses its modules.
	var stderr bytes.Buffer
	cmd := exec.Command(tool, "-dc", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w %s: %s -dc: %v %s", ErrCompressed, path, tool, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Depends parses the contents of a .modinfo section (NUL-separated
// key=value strings) and returns the names in its depends= entry.
// A name with a slash is no module name (the kernel builds names from
// file names) and is left out, so it can never become a path.
func Depends(modinfo []byte) []string {
	var deps []string
	for _, kv := range bytes.Split(modinfo, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		for _, d := range strings.Split(string(v), ",") {
			if d = strings.TrimSpace(d); d != "" && !strings.Contains(d, "/") {
				deps = append(deps, Name(d))
			}
		}
	}
	return deps
}
