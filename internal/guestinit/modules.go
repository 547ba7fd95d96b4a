package guestinit

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// loadModules loads every module listed in the file at list, in order.
// Without the file there is nothing to load: the drivers are built in. A
// module that fails is reported and skipped; the ones after it may still be
// what the transport needs.
func loadModules(list string, load func(path string) error) {
	data, err := os.ReadFile(list)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logf("modules: %v", err)
		}
		return
	}
	for _, path := range parseModuleList(string(data)) {
		if err := load(path); err != nil {
			logf("%v", err)
		}
	}
}

// parseModuleList returns the paths of a modules.order file: one a line,
// blank lines and # comments ignored.
func parseModuleList(s string) []string {
	var paths []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			paths = append(paths, line)
		}
	}
	return paths
}

// loadModule loads one module file. A module already loaded (built in, or
// listed twice) is not an error.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module: %w", err)
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", moduleFlags(path))
	switch {
	case err == nil, errors.Is(err, unix.EEXIST):
		return nil
	case errors.Is(err, unix.ENOENT):
		// The file is open; ENOENT from the kernel means a symbol the
		// module needs is missing.
		return fmt.Errorf("load module %s: unknown symbol (is a dependency missing or listed after it?): %w", path, err)
	default:
		return fmt.Errorf("load module %s: %w", path, err)
	}
}

// moduleFlags asks the kernel to decompress a compressed module itself;
// kernels without that support fail such a module with EINVAL.
func moduleFlags(path string) int {
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(path, ext) {
			return unix.MODULE_INIT_COMPRESSED_FILE
		}
	}
	return 0
}
