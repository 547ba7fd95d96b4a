// Package kernelimage turns a compressed x86 kernel (bzImage) into the ELF
// vmlinux within it, which QEMU boots through the PVH entry point.
//
// Booting a bzImage runs the firmware's bzImage loader and then the kernel's
// own decompressor; under TCG emulation that costs about half a second per
// boot. QEMU can instead load an uncompressed ELF kernel carrying the Xen
// XEN_ELFNOTE_PHYS32_ENTRY note and jump straight to its PVH entry, so the
// harness extracts that ELF once and caches it on disk.
//
// Kernels compressed with gzip or LZ4 (Debian's) are extracted. Others
// (xz, whose x86 branch filter no maintained Go decoder reads, zstd,
// bzip2, lzma, lzo) are ErrUnsupported and boot as bzImages: a zstd
// decoder would cost every guest process its start-up tables, since the
// agent is this same binary.
package kernelimage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/pierrec/lz4/v4"

	"github.com/provium/provium/internal/cache"
)

// keepKernels is how many extracted kernels the cache keeps (about 50 MB
// each).
const keepKernels = 4

// ErrUnsupported means the image holds no kernel this package can extract
// (not a bzImage, an unknown compression, or no PVH entry).
var ErrUnsupported = errors.New("kernel image not supported for PVH boot")

const (
	// maxKernelSize bounds the decompressed output so that a corrupt or
	// hostile image cannot fill the disk; real kernels are well under it.
	maxKernelSize = 512 << 20

	// lz4LegacyBlockSize is the fixed uncompressed block size of the LZ4
	// legacy frame format.
	lz4LegacyBlockSize = 8 << 20

	// xenElfnotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY, the note QEMU
	// looks for to find the PVH entry point.
	xenElfnotePhys32Entry = 18
)

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicLZ4  = []byte{0x02, 0x21, 0x4c, 0x18}
)

// payload locates the compressed kernel inside a bzImage, as described by
// the Linux x86 boot protocol (Documentation/arch/x86/boot.rst).
func payload(r io.ReaderAt, size int64) (off, n int64, err error) {
	var hdr [0x250]byte
	if size < int64(len(hdr)) {
		return 0, 0, fmt.Errorf("not a bzImage: %w", ErrUnsupported)
	}
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return 0, 0, err
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return 0, 0, fmt.Errorf("not a bzImage: %w", ErrUnsupported)
	}
	// payload_offset and payload_length first appeared in protocol 2.08.
	if v := binary.LittleEndian.Uint16(hdr[0x206:]); v < 0x0208 {
		return 0, 0, fmt.Errorf("boot protocol %d.%02d predates payload fields: %w", v>>8, v&0xff, ErrUnsupported)
	}
	setupSects := int64(hdr[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off = (setupSects+1)*512 + int64(binary.LittleEndian.Uint32(hdr[0x248:]))
	n = int64(binary.LittleEndian.Uint32(hdr[0x24c:]))
	// The fields are 32-bit, so these sums cannot overflow an int64.
	if off+n > size {
		return 0, 0, fmt.Errorf("payload [%d, %d) runs past end of %d-byte file", off, off+n, size)
	}
	// The build appends the uncompressed size after the compressed data,
	// so even an empty stream is longer than this.
	if n < 8 {
		return 0, 0, fmt.Errorf("payload of %d bytes is too short", n)
	}
	return off, n, nil
}

// Extract writes the uncompressed kernel inside the bzImage r (size bytes)
// to w.
func Extract(r io.ReaderAt, size int64, w io.Writer) error {
	off, n, err := payload(r, size)
	if err != nil {
		return err
	}
	var head [6]byte
	if _, err := r.ReadAt(head[:], off); err != nil {
		return err
	}
	// The last four bytes of every x86 payload hold the uncompressed size:
	// the build appends them (for gzip they are the member's ISIZE) and the
	// kernel's own decompressor relies on them. Checking the output against
	// them catches truncation that formats without an end marker (LZ4
	// legacy) would otherwise let through.
	var tail [4]byte
	if _, err := r.ReadAt(tail[:], off+n-4); err != nil {
		return err
	}
	want := binary.LittleEndian.Uint32(tail[:])

	cw := &countingWriter{w: w}
	switch {
	case bytes.HasPrefix(head[:], magicGzip):
		err = extractGzip(io.NewSectionReader(r, off, n), cw)
	case bytes.HasPrefix(head[:], magicLZ4):
		err = extractLZ4(r, off, n, cw)
	default:
		return fmt.Errorf("unknown compression (magic % x): %w", head, ErrUnsupported)
	}
	if err != nil {
		return err
	}
	if uint32(cw.n) != want {
		return fmt.Errorf("decompressed %d bytes, size trailer says %d", cw.n, want)
	}
	return nil
}

var errTooLarge = fmt.Errorf("uncompressed kernel exceeds %d MiB", maxKernelSize>>20)

// countingWriter stops the decompressors once the output passes
// maxKernelSize, since nothing in a compressed stream bounds its expansion.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > maxKernelSize {
		return 0, errTooLarge
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func extractGzip(r io.Reader, w io.Writer) error {
	zr, err := gzip.NewReader(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	// The payload may carry the size trailer after the member; with
	// multistream on, gzip would try to parse it as a second header.
	zr.Multistream(false)
	if _, err := io.Copy(w, zr); err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	return nil
}

// extractLZ4 decodes the LZ4 legacy frame the kernel build writes
// (lz4 -l): a magic number, then blocks each preceded by its 4-byte
// little-endian compressed size, with no end marker.
func extractLZ4(r io.ReaderAt, off, n int64, w io.Writer) error {
	const magicLen = 4
	pos, end := off+magicLen, off+n
	dst := make([]byte, lz4LegacyBlockSize)
	var src []byte
	var sizeBuf [4]byte
	// The last four bytes are the size trailer, so a block needs at least
	// one byte beyond its own size field.
	for end-pos >= 4+1 {
		if _, err := r.ReadAt(sizeBuf[:], pos); err != nil {
			return err
		}
		pos += 4
		bn := int64(binary.LittleEndian.Uint32(sizeBuf[:]))
		// Concatenated legacy frames repeat the magic where a block size
		// would be; the kernel's unlz4 skips it, so do the same.
		if bn == int64(binary.LittleEndian.Uint32(magicLZ4)) {
			continue
		}
		if bn == 0 || bn > int64(lz4.CompressBlockBound(lz4LegacyBlockSize)) {
			return fmt.Errorf("lz4: invalid block size %d at payload offset %d", bn, pos-4-off)
		}
		if bn > end-pos {
			return fmt.Errorf("lz4: block of %d bytes at payload offset %d runs past end of payload: %w", bn, pos-4-off, io.ErrUnexpectedEOF)
		}
		if int64(cap(src)) < bn {
			src = make([]byte, bn)
		}
		src = src[:bn]
		if _, err := r.ReadAt(src, pos); err != nil {
			return err
		}
		pos += bn
		dn, err := lz4.UncompressBlock(src, dst)
		if err != nil {
			return fmt.Errorf("lz4: block at payload offset %d: %w", pos-bn-4-off, err)
		}
		if _, err := w.Write(dst[:dn]); err != nil {
			return err
		}
	}
	return nil
}

// HasPVHEntry reports whether the ELF file r has a PVH entry point (Xen ELF
// note type 18, XEN_ELFNOTE_PHYS32_ENTRY).
func HasPVHEntry(r io.ReaderAt) bool {
	f, err := elf.NewFile(r)
	if err != nil {
		return false
	}
	if f.Machine != elf.EM_X86_64 && f.Machine != elf.EM_386 {
		return false
	}
	// QEMU reads the entry as a pointer-sized value and refuses to boot
	// when it is zero, so the note alone is not enough.
	entrySize := 4
	if f.Class == elf.ELFCLASS64 {
		entrySize = 8
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE && hasPVHNote(p.Open(), f.ByteOrder, entrySize) {
			return true
		}
	}
	return false
}

// hasPVHNote scans the notes in a PT_NOTE segment field by field: the
// sizes come from the file unchecked, so nothing is allocated from them.
func hasPVHNote(seg io.Reader, bo binary.ByteOrder, entrySize int) bool {
	r := bufio.NewReader(seg)
	align4 := func(x uint32) int64 { return (int64(x) + 3) &^ 3 }
	var hdr [12]byte
	var name [4]byte
	var desc [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return false
		}
		namesz, descsz, typ := bo.Uint32(hdr[0:]), bo.Uint32(hdr[4:]), bo.Uint32(hdr[8:])
		if typ != xenElfnotePhys32Entry || namesz != 4 || int64(descsz) < int64(entrySize) {
			if _, err := io.CopyN(io.Discard, r, align4(namesz)+align4(descsz)); err != nil {
				return false
			}
			continue
		}
		if _, err := io.ReadFull(r, name[:]); err != nil {
			return false
		}
		if _, err := io.ReadFull(r, desc[:entrySize]); err != nil {
			return false
		}
		if string(name[:]) != "Xen\x00" {
			if _, err := io.CopyN(io.Discard, r, align4(descsz)-int64(entrySize)); err != nil {
				return false
			}
			continue
		}
		if entrySize == 8 {
			return bo.Uint64(desc[:]) != 0
		}
		return bo.Uint32(desc[:]) != 0
	}
}

// PVH returns a kernel QEMU can boot through its PVH entry point for the
// kernel image at path: path itself if it is already such an ELF, else the
// ELF extracted from the bzImage, cached in cacheDir under a name derived
// from the SHA-256 of the image's content. It returns an error wrapping
// ErrUnsupported when neither works, or when booting it through PVH was
// seen to fail (see Remember); the caller then boots path as it is.
func PVH(path, cacheDir string) (string, error) {
	if works, known := Known(path, cacheDir); known && !works {
		return "", fmt.Errorf("kernel image %s: its PVH entry did not boot before: %w", path, ErrUnsupported)
	}
	// VMs booting at once for the first time extract the kernel once.
	extracting.Lock()
	defer extracting.Unlock()
	return pvh(path, cacheDir)
}

var extracting sync.Mutex

// Remember records whether the kernel image at path booted through its
// PVH entry, beside its extraction in cacheDir: some kernels carry the
// entry and still do not come up through it under a given QEMU.
func Remember(path, cacheDir string, works bool) error {
	memo, err := statusFile(path, cacheDir)
	if err != nil {
		return err
	}
	status := "fails\n"
	if works {
		status = "works\n"
	}
	return cache.WriteFile(memo, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, status)
		return err
	})
}

// Known reports what Remember recorded for the image at path, if anything.
func Known(path, cacheDir string) (works, known bool) {
	memo, err := statusFile(path, cacheDir)
	if err != nil {
		return false, false
	}
	b, err := os.ReadFile(memo)
	if err != nil {
		return false, false
	}
	switch string(b) {
	case "works\n":
		return true, true
	case "fails\n":
		return false, true
	}
	return false, false
}

func statusFile(path, cacheDir string) (string, error) {
	sum, err := cache.Hash(path)
	if err != nil {
		return "", fmt.Errorf("kernel image %s: %w", path, err)
	}
	return filepath.Join(cacheDir, sum[:16]+".pvh"), nil
}

func pvh(path, cacheDir string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("kernel image %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("kernel image %s: %w", path, err)
	}
	if HasPVHEntry(f) {
		return path, nil
	}
	// Fail fast on anything that is not a bzImage before hashing it.
	if _, _, err := payload(f, fi.Size()); err != nil {
		return "", fmt.Errorf("kernel image %s: %w", path, err)
	}
	sum, err := cache.Hash(path)
	if err != nil {
		return "", fmt.Errorf("kernel image %s: %w", path, err)
	}
	out := filepath.Join(cacheDir, sum[:16]+".elf")
	if c, err := os.Open(out); err == nil {
		ok := HasPVHEntry(c)
		c.Close()
		if ok {
			cache.Touch(out)
			return out, nil
		}
		// Not what this package publishes; extract it afresh.
	}
	// The cached file outlives this process and is trusted on sight, so
	// it is published whole (other processes may be extracting the same
	// image): see cache.WriteFile.
	err = cache.WriteFile(out, 0o644, func(w io.Writer) error {
		if err := Extract(f, fi.Size(), w); err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("kernel image %s: %w", path, err)
	}
	if c, err := os.Open(out); err != nil || !HasPVHEntry(c) {
		if c != nil {
			c.Close()
		}
		os.Remove(out)
		return "", fmt.Errorf("kernel image %s: extracted kernel has no PVH entry: %w", path, ErrUnsupported)
	} else {
		c.Close()
	}
	cache.Prune(cacheDir, "*.elf", cache.Limit{MaxEntries: keepKernels}, out)
	return out, nil
}
