package initramfs

import (
	"fmt"
	"io"
	"sort"
)

// WriteFiles writes an archive that places each host file files[guest] at
// the guest path, creating parent directories and keeping the host file's
// permissions. Entries are sorted by guest path so equal maps give equal
// archives.
func WriteFiles(w io.Writer, files map[string]string) error {
	guests := make([]string, 0, len(files))
	for g := range files {
		guests = append(guests, g)
	}
	sort.Strings(guests)
	a := newArchive(w)
	for _, g := range guests {
		if err := a.hostFile(g, files[g], 0); err != nil {
			return fmt.Errorf("inject %s as %s: %w", files[g], g, err)
		}
	}
	return a.close()
}
