package initramfs

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cavaliergopher/cpio"
)

// TestLoadableFileRuns cuts this test binary down to its segments and runs
// the result: the guest must get an agent that still works.
func TestLoadableFileRuns(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(self)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	a := newArchive(&buf)
	if err := a.loadableFile("/provium/init", self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	files, _ := unpack(t, buf.Bytes())
	got := files["provium/init"]
	if got.mode != cpio.TypeReg|0o755 {
		t.Fatalf("mode %v", got.mode)
	}
	if int64(len(got.data)) >= st.Size() {
		t.Errorf("%d bytes written of a %d-byte executable: nothing was cut", len(got.data), st.Size())
	}
	cut := filepath.Join(t.TempDir(), "cut")
	if err := os.WriteFile(cut, []byte(got.data), 0o755); err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(cut)
	if err != nil {
		t.Fatalf("the cut executable is not an ELF file: %v", err)
	}
	if len(ef.Sections) != 0 {
		t.Errorf("the cut executable still lists %d sections", len(ef.Sections))
	}
	ef.Close()
	out, err := exec.Command(cut, "-test.run=^$").CombinedOutput()
	if err != nil {
		t.Fatalf("the cut executable does not run: %v\n%s", err, out)
	}
}

// TestLoadableFileKeepsOthers writes a file that is no ELF executable
// whole.
func TestLoadableFileKeepsOthers(t *testing.T) {
	src := writeFile(t, filepath.Join(t.TempDir(), "script"), "#!/bin/sh\necho hi\n", 0o755)
	var buf bytes.Buffer
	a := newArchive(&buf)
	if err := a.loadableFile("/x", src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	files, _ := unpack(t, buf.Bytes())
	if files["x"].data != "#!/bin/sh\necho hi\n" {
		t.Errorf("got %q", files["x"].data)
	}
}
