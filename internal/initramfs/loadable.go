package initramfs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// The agent goes into every guest, and the kernel unpacks the initramfs at
// every boot: about 30 MB/s under an emulated CPU. A Go binary carries
// debug information and a symbol table that nothing in the guest reads, a
// third of its size, after its last segment; the shim holds only the bytes
// the segments cover, with the section headers forgotten in the ELF header
// (Go's linker puts their table in the first page, where it stays as
// unreferenced bytes).

// loadableSize returns how many leading bytes of the ELF executable f its
// segments cover, and false if f is not a 64-bit little-endian ELF file
// whose segments lie within it.
func loadableSize(f *os.File) (int64, bool) {
	ef, err := elf.NewFile(f)
	if err != nil || ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB || len(ef.Progs) == 0 {
		return 0, false
	}
	var end uint64
	for _, p := range ef.Progs {
		end = max(end, p.Off+p.Filesz)
	}
	st, err := f.Stat()
	if err != nil || end < elfHeaderSize || end > uint64(st.Size()) {
		return 0, false
	}
	return int64(end), true
}

const elfHeaderSize = 64

// loadableFile writes the host executable src to guest path name, keeping
// only what loadableSize covers; an executable it cannot cut is written
// whole.
func (a *archive) loadableFile(name, src string, mode os.FileMode) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	size, ok := loadableSize(f)
	if !ok {
		return a.hostFile(name, src, mode)
	}
	head := make([]byte, elfHeaderSize)
	if _, err := f.ReadAt(head, 0); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	// e_shoff, e_shnum and e_shstrndx: no section headers.
	binary.LittleEndian.PutUint64(head[0x28:], 0)
	binary.LittleEndian.PutUint16(head[0x3c:], 0)
	binary.LittleEndian.PutUint16(head[0x3e:], 0)
	body := io.MultiReader(bytes.NewReader(head), io.NewSectionReader(f, elfHeaderSize, size-elfHeaderSize))
	if err := a.file(name, mode, size, body); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}
