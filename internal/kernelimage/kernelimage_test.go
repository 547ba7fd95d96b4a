package kernelimage

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
)

var le = binary.LittleEndian

// testELF returns a minimal x86-64 ELF whose only program header is a
// PT_NOTE segment. The segment holds a GNU note first, so the scan has to
// skip a note, then, if pvhEntry is not zero, a Xen PHYS32_ENTRY note.
// Some text follows so that the compressors have something to chew on.
func testELF(withNote bool, pvhEntry uint64) []byte {
	var notes []byte
	note := func(name string, typ uint32, desc []byte) {
		notes = le.AppendUint32(notes, uint32(len(name)))
		notes = le.AppendUint32(notes, uint32(len(desc)))
		notes = le.AppendUint32(notes, typ)
		notes = append(notes, name...)
		notes = append(notes, desc...)
	}
	note("GNU\x00", 3, []byte("buildid!"))
	if withNote {
		note("Xen\x00", 18, le.AppendUint64(nil, pvhEntry))
	}

	const ehsize, phentsize = 64, 56
	b := []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b = le.AppendUint16(b, 2)  // ET_EXEC
	b = le.AppendUint16(b, 62) // EM_X86_64
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, 0x1000000) // entry
	b = le.AppendUint64(b, ehsize)    // phoff
	b = le.AppendUint64(b, 0)         // shoff
	b = le.AppendUint32(b, 0)         // flags
	b = le.AppendUint16(b, ehsize)
	b = le.AppendUint16(b, phentsize)
	b = le.AppendUint16(b, 1) // phnum
	b = le.AppendUint16(b, 0) // shentsize
	b = le.AppendUint16(b, 0) // shnum
	b = le.AppendUint16(b, 0) // shstrndx

	b = le.AppendUint32(b, 4) // PT_NOTE
	b = le.AppendUint32(b, 4) // PF_R
	b = le.AppendUint64(b, ehsize+phentsize)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, uint64(len(notes)))
	b = le.AppendUint64(b, uint64(len(notes)))
	b = le.AppendUint64(b, 4)
	b = append(b, notes...)

	for i := range 5000 {
		b = fmt.Appendf(b, "kernel text line %d\n", i*i)
	}
	return b
}

// bzImage wraps payload in enough of a bzImage header for Extract.
func bzImage(setupSects byte, payload []byte) []byte {
	n := int(setupSects)
	if n == 0 {
		n = 4
	}
	const payloadOffset = 0x40
	img := make([]byte, (n+1)*512+payloadOffset)
	for i := range img {
		img[i] = 0xcc // setup code, never looked at
	}
	img[0x1f1] = setupSects
	copy(img[0x202:], "HdrS")
	le.PutUint16(img[0x206:], 0x020f)
	le.PutUint32(img[0x248:], payloadOffset)
	le.PutUint32(img[0x24c:], uint32(len(payload)))
	return append(img, payload...)
}

// withSize appends the uncompressed size, as the kernel build does.
func withSize(compressed []byte, size int) []byte {
	return le.AppendUint32(bytes.Clone(compressed), uint32(size))
}

func gzipData(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lz4Legacy writes an LZ4 legacy frame with blocks of blockSize bytes;
// with repeatMagic it starts a new frame before every block after the
// first, as concatenated frames do.
func lz4Legacy(t *testing.T, data []byte, blockSize int, repeatMagic bool) []byte {
	out := bytes.Clone(magicLZ4)
	dst := make([]byte, lz4.CompressBlockBound(blockSize))
	for i := 0; i < len(data); i += blockSize {
		if i > 0 && repeatMagic {
			out = append(out, magicLZ4...)
		}
		n, err := lz4.CompressBlock(data[i:min(i+blockSize, len(data))], dst, nil)
		if err != nil || n == 0 {
			t.Fatalf("lz4.CompressBlock = %d, %v", n, err)
		}
		out = le.AppendUint32(out, uint32(n))
		out = append(out, dst[:n]...)
	}
	return out
}

type testImage struct {
	name string
	img  []byte
}

// testImages returns a bzImage of elf for every supported compression.
func testImages(t *testing.T, elf []byte) []testImage {
	t.Helper()
	n := len(elf)
	return []testImage{
		{"gzip", bzImage(3, withSize(gzipData(t, elf), n))},
		// Kernels built with gzip carry no extra trailer: the member's
		// own ISIZE is the last four bytes.
		{"gzip-isize", bzImage(3, gzipData(t, elf))},
		{"lz4", bzImage(3, withSize(lz4Legacy(t, elf, lz4LegacyBlockSize, false), n))},
		{"lz4-blocks", bzImage(3, withSize(lz4Legacy(t, elf, 4096, false), n))},
		{"lz4-frames", bzImage(3, withSize(lz4Legacy(t, elf, 4096, true), n))},
		{"setup-sects-0", bzImage(0, withSize(lz4Legacy(t, elf, 4096, false), n))},
	}
}

func TestExtract(t *testing.T) {
	elf := testELF(true, 0x1000000)
	for _, tc := range testImages(t, elf) {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Extract(bytes.NewReader(tc.img), int64(len(tc.img)), &out); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if !bytes.Equal(out.Bytes(), elf) {
				t.Fatalf("Extract returned %d bytes that differ from the %d-byte ELF", out.Len(), len(elf))
			}
		})
	}
}

// setPayload rewrites the payload_offset and payload_length fields.
func setPayload(img []byte, off, n uint32) []byte {
	img = bytes.Clone(img)
	le.PutUint32(img[0x248:], off)
	le.PutUint32(img[0x24c:], n)
	return img
}

func TestExtractErrors(t *testing.T) {
	elf := testELF(true, 0x1000000)
	lz4Img := bzImage(3, withSize(lz4Legacy(t, elf, 4096, false), len(elf)))
	oldProto := bytes.Clone(lz4Img)
	le.PutUint16(oldProto[0x206:], 0x0206)
	bzip2 := bzImage(3, withSize([]byte("BZh91AY&SY-not-really-bzip2"), len(elf)))
	// xz, which real kernels combine with an x86 branch filter, and
	// zstd: left to the bzImage boot.
	zstdImg := bzImage(3, withSize([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}, len(elf)))
	xzImg := bzImage(3, withSize([]byte{0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 4}, len(elf)))
	wrongSize := bzImage(3, withSize(lz4Legacy(t, elf, 4096, false), len(elf)+1))
	badLZ4 := lz4Legacy(t, elf, 4096, false)
	// A literal run whose length runs far past the block.
	copy(badLZ4[8:], bytes.Repeat([]byte{0xff}, 16))
	badLZ4 = bzImage(3, withSize(badLZ4, len(elf)))

	tests := []struct {
		name        string
		img         []byte
		unsupported bool
	}{
		{"empty", nil, true},
		{"short", []byte("HdrS"), true},
		{"elf", elf, true},
		{"old-protocol", oldProto, true},
		{"unknown-compression", bzip2, true},
		{"xz", xzImg, true},
		{"zstd", zstdImg, true},
		{"payload-offset-past-end", setPayload(lz4Img, uint32(len(lz4Img)), 16), false},
		{"payload-length-past-end", setPayload(lz4Img, 0x40, uint32(len(lz4Img))), false},
		{"payload-fields-max", setPayload(lz4Img, 0xffffffff, 0xffffffff), false},
		{"payload-too-short", setPayload(lz4Img, 0x40, 4), false},
		{"size-trailer-mismatch", wrongSize, false},
		{"corrupt-lz4-block", badLZ4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Extract(bytes.NewReader(tc.img), int64(len(tc.img)), io.Discard)
			if err == nil {
				t.Fatal("Extract succeeded")
			}
			if got := errors.Is(err, ErrUnsupported); got != tc.unsupported {
				t.Fatalf("Extract: %v; errors.Is(err, ErrUnsupported) = %v, want %v", err, got, tc.unsupported)
			}
		})
	}
}

// TestExtractTruncated cuts the payload of every test image short, as a
// partial download would, keeping the header consistent with the file.
func TestExtractTruncated(t *testing.T) {
	elf := testELF(true, 0x1000000)
	for _, tc := range testImages(t, elf) {
		hdrLen := len(tc.img) - int(le.Uint32(tc.img[0x24c:]))
		n := len(tc.img) - hdrLen
		for _, keep := range []int{n / 2, n - 5, 10} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, keep), func(t *testing.T) {
				img := bytes.Clone(tc.img[:hdrLen+keep])
				le.PutUint32(img[0x24c:], uint32(keep))
				var out bytes.Buffer
				err := Extract(bytes.NewReader(img), int64(len(img)), &out)
				if err == nil {
					t.Fatalf("Extract of %d of %d payload bytes succeeded with %d bytes", keep, n, out.Len())
				}
				if errors.Is(err, ErrUnsupported) {
					t.Fatalf("Extract: %v; truncation is corruption, not ErrUnsupported", err)
				}
			})
		}
	}
}

// TestExtractLZ4CutAtBlock truncates an LZ4 legacy frame between blocks,
// which nothing in the format reveals; only the size trailer does.
func TestExtractLZ4CutAtBlock(t *testing.T) {
	elf := testELF(true, 0x1000000)
	frame := lz4Legacy(t, elf, 4096, false)
	var cuts []int
	for pos := 4; pos < len(frame); pos += 4 + int(le.Uint32(frame[pos:])) {
		cuts = append(cuts, pos)
	}
	if len(cuts) < 3 {
		t.Fatalf("test frame has only %d blocks", len(cuts))
	}
	for _, cut := range cuts[1:] {
		img := bzImage(3, frame[:cut])
		var out bytes.Buffer
		if err := Extract(bytes.NewReader(img), int64(len(img)), &out); err == nil {
			t.Errorf("Extract of frame cut at %d of %d bytes succeeded with %d of %d bytes", cut, len(frame), out.Len(), len(elf))
		}
	}
}

func TestExtractTooLarge(t *testing.T) {
	// 65 blocks of 8 MiB of zeros: 520 MiB from a payload of about 2 MiB.
	zeros := make([]byte, lz4LegacyBlockSize)
	block := lz4Legacy(t, zeros, lz4LegacyBlockSize, false)[4:]
	payload := bytes.Clone(magicLZ4)
	for range 65 {
		payload = append(payload, block...)
	}
	img := bzImage(3, withSize(payload, 0))
	err := Extract(bytes.NewReader(img), int64(len(img)), io.Discard)
	if !errors.Is(err, errTooLarge) {
		t.Fatalf("Extract = %v, want %v", err, errTooLarge)
	}
}

func TestHasPVHEntry(t *testing.T) {
	withNote := testELF(true, 0x1000000)
	tests := []struct {
		name string
		file []byte
		want bool
	}{
		{"note", withNote, true},
		{"no-note", testELF(false, 0), false},
		{"zero-entry", testELF(true, 0), false},
		{"not-elf", []byte("MZ this is no ELF file at all, not even close"), false},
		{"cut-in-note", withNote[:64+56+20+12+4+4], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := HasPVHEntry(bytes.NewReader(tc.file)); got != tc.want {
				t.Fatalf("HasPVHEntry = %v, want %v", got, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tempFiles lists what PVH's temporary files would be named like.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPVH(t *testing.T) {
	elf := testELF(true, 0x1000000)
	for _, tc := range testImages(t, elf) {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PROVIUM_CACHE", t.TempDir())
			dir := t.TempDir()
			image := filepath.Join(dir, "vmlinuz")
			writeFile(t, image, tc.img)
			cacheDir := filepath.Join(dir, "cache", "pvh")

			got, err := PVH(image, cacheDir)
			if err != nil {
				t.Fatalf("PVH: %v", err)
			}
			sum := sha256.Sum256(tc.img)
			if want := filepath.Join(cacheDir, hex.EncodeToString(sum[:])[:16]+".elf"); got != want {
				t.Fatalf("PVH = %s, want %s", got, want)
			}
			if !bytes.Equal(readFile(t, got), elf) {
				t.Fatal("cached kernel differs from the ELF in the image")
			}
			fi, err := os.Stat(got)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("cached kernel mode %v, want 0644", fi.Mode().Perm())
			}
			if tmp := tempFiles(t, cacheDir); len(tmp) > 0 {
				t.Errorf("temporary files left behind: %v", tmp)
			}

			// A new process finds the file on disk and must not rewrite it.
			old := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(got, old, old); err != nil {
				t.Fatal(err)
			}
			again, err := PVH(image, cacheDir)
			if err != nil || again != got {
				t.Fatalf("second PVH = %s, %v; want %s", again, err, got)
			}
			// A rewrite renames a new file into place; a use only marks
			// the file as recent for the cache's bound.
			now, err := os.Stat(got)
			if err != nil || !os.SameFile(fi, now) {
				t.Fatalf("cached kernel was rewritten (stat %v, %v)", now, err)
			}
			if !now.ModTime().Equal(old) {
				t.Errorf("cached kernel's modification time moved to %v", now.ModTime())
			}
			if used := time.Unix(now.Sys().(*syscall.Stat_t).Atim.Unix()); !used.After(old) {
				t.Errorf("cached kernel not marked as used: access time %v", used)
			}
		})
	}
}

// An image rewritten in place, even with the same size and modification
// time, is a new image: its extraction is not the old one's.
func TestPVHNoticesARewrite(t *testing.T) {
	t.Setenv("PROVIUM_CACHE", t.TempDir())
	dir := t.TempDir()
	image := filepath.Join(dir, "vmlinuz")
	cacheDir := filepath.Join(dir, "cache")
	elf := testELF(true, 0x1000000)
	writeFile(t, image, bzImage(3, withSize(gzipData(t, elf), len(elf))))
	first, err := PVH(image, cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	img2 := readFile(t, image)
	img2[0x300] ^= 1 // setup code: a new image, the same size
	elf2 := elf
	writeFile(t, image, img2)
	if err := os.Chtimes(image, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	got, err := PVH(image, cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if got == first || !bytes.Equal(readFile(t, got), elf2) {
		t.Fatalf("PVH after a rewrite = %s, want a new file holding the new kernel", got)
	}
	// The cache was cleaned: the kernel is extracted again.
	if err := os.RemoveAll(cacheDir); err != nil {
		t.Fatal(err)
	}
	if again, err := PVH(image, cacheDir); err != nil || again != got || !bytes.Equal(readFile(t, again), elf2) {
		t.Fatalf("PVH after cache removal = %s, %v", again, err)
	}
}

// A kernel whose PVH entry did not boot is booted as a bzImage from then
// on; one that did is remembered too.
func TestRememberPVH(t *testing.T) {
	t.Setenv("PROVIUM_CACHE", t.TempDir())
	dir := t.TempDir()
	image := filepath.Join(dir, "vmlinuz")
	cacheDir := filepath.Join(dir, "cache")
	elf := testELF(true, 0x1000000)
	writeFile(t, image, bzImage(3, withSize(gzipData(t, elf), len(elf))))
	if _, known := Known(image, cacheDir); known {
		t.Fatal("an image never booted has a known outcome")
	}
	if _, err := PVH(image, cacheDir); err != nil {
		t.Fatal(err)
	}
	if err := Remember(image, cacheDir, false); err != nil {
		t.Fatal(err)
	}
	if works, known := Known(image, cacheDir); !known || works {
		t.Fatalf("Known = %v, %v after a failed boot", works, known)
	}
	if _, err := PVH(image, cacheDir); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("PVH of a kernel whose entry failed = %v, want ErrUnsupported", err)
	}
	if err := Remember(image, cacheDir, true); err != nil {
		t.Fatal(err)
	}
	if got, err := PVH(image, cacheDir); err != nil || got == image {
		t.Fatalf("PVH after a working boot = %s, %v", got, err)
	}
}

func TestPVHConcurrent(t *testing.T) {
	t.Setenv("PROVIUM_CACHE", t.TempDir())
	dir := t.TempDir()
	image := filepath.Join(dir, "vmlinuz")
	cacheDir := filepath.Join(dir, "cache")
	elf := testELF(true, 0x1000000)
	writeFile(t, image, bzImage(3, withSize(gzipData(t, elf), len(elf))))

	const n = 8
	paths := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { paths[i], errs[i] = pvh(image, cacheDir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("call %d: PVH = %s, %v; call 0 returned %s", i, paths[i], errs[i], paths[0])
		}
	}
	if !bytes.Equal(readFile(t, paths[0]), elf) {
		t.Fatal("cached kernel differs from the ELF in the image")
	}
	if tmp := tempFiles(t, cacheDir); len(tmp) > 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}
}

func TestPVHAlreadyELF(t *testing.T) {
	t.Setenv("PROVIUM_CACHE", t.TempDir())
	dir := t.TempDir()
	image := filepath.Join(dir, "vmlinux")
	writeFile(t, image, testELF(true, 0x1000000))
	cacheDir := filepath.Join(dir, "cache")
	got, err := PVH(image, cacheDir)
	if err != nil || got != image {
		t.Fatalf("PVH = %s, %v; want %s", got, err, image)
	}
	if _, err := os.Stat(cacheDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PVH created the cache for a kernel it did not extract (stat: %v)", err)
	}
}

func TestPVHUnsupported(t *testing.T) {
	noNote := testELF(false, 0)
	tests := []struct {
		name string
		img  []byte
	}{
		{"elf-without-note", noNote},
		{"bzimage-without-note", bzImage(3, withSize(gzipData(t, noNote), len(noNote)))},
		{"bzimage-of-garbage", bzImage(3, withSize(gzipData(t, []byte("not an ELF")), 10))},
		{"unknown-compression", bzImage(3, withSize([]byte("\x5d\x00\x00\x80\x00lzma"), len(noNote)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PROVIUM_CACHE", t.TempDir())
			dir := t.TempDir()
			image := filepath.Join(dir, "vmlinuz")
			writeFile(t, image, tc.img)
			cacheDir := filepath.Join(dir, "cache")
			for i := range 2 { // the same answer twice
				got, err := PVH(image, cacheDir)
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("PVH call %d = %q, %v; want ErrUnsupported", i, got, err)
				}
			}
			entries, _ := os.ReadDir(cacheDir)
			if len(entries) > 0 {
				t.Errorf("cache holds %d entries after a failed extraction", len(entries))
			}
		})
	}
}

func TestPVHMissing(t *testing.T) {
	_, err := PVH(filepath.Join(t.TempDir(), "nope"), t.TempDir())
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrUnsupported) {
		t.Fatalf("PVH of a missing file = %v, want ErrNotExist", err)
	}
}

func TestRealKernel(t *testing.T) {
	// Where `provium setup` puts the kernel (see cache.KernelPackage,
	// which this package cannot import without risking a cycle).
	cache := os.Getenv("PROVIUM_CACHE")
	if cache == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			t.Skip(err)
		}
		cache = filepath.Join(d, "provium")
	}
	matches, err := filepath.Glob(filepath.Join(cache, "kernel", "boot", "vmlinuz-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) == 0 {
		t.Skipf("no kernel in %s/kernel/boot", cache)
	}
	path := matches[0]
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	start := time.Now()
	if err := Extract(f, fi.Size(), &out); err != nil {
		t.Fatalf("Extract %s: %v", path, err)
	}
	t.Logf("Extract %s: %d → %d bytes in %v", filepath.Base(path), fi.Size(), out.Len(), time.Since(start))
	if !bytes.HasPrefix(out.Bytes(), []byte("\x7fELF")) {
		t.Fatalf("extracted kernel starts with % x, want an ELF header", out.Bytes()[:min(out.Len(), 4)])
	}
	if !HasPVHEntry(bytes.NewReader(out.Bytes())) {
		t.Fatal("extracted kernel has no PVH entry")
	}

	t.Setenv("PROVIUM_CACHE", t.TempDir())
	cacheDir := t.TempDir()
	start = time.Now()
	got, err := PVH(path, cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PVH, cold: %v", time.Since(start))
	start = time.Now()
	if again, err := PVH(path, cacheDir); err != nil || again != got {
		t.Fatalf("PVH from disk cache = %s, %v; want %s", again, err, got)
	}
	t.Logf("PVH, disk cache: %v", time.Since(start))
	start = time.Now()
	if again, err := PVH(path, cacheDir); err != nil || again != got {
		t.Fatalf("PVH from memo = %s, %v; want %s", again, err, got)
	}
	t.Logf("PVH, memo: %v", time.Since(start))
	if !bytes.Equal(readFile(t, got), out.Bytes()) {
		t.Fatal("cached kernel differs from Extract's output")
	}
}
