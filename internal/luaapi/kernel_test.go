package luaapi

import (
	"strings"
	"testing"

	"github.com/provium/provium/internal/result"
)

// A kernel report fails the sub-test during which it appeared, even when
// every assertion held, and names the line that was running; the next
// sub-test is not blamed.
func TestKernelReportFailsItsSubtest(t *testing.T) {
	r := runLua(t, `
local vm = provium.create("minimal"):boot()
test("clean", function() assert(vm:exec("true").ok) end)
test("warns", function()
  vm:exec("true")
  vm:exec("printk WARNING in conf_ioctl")
  assert_eq(1, 1)
end)
test("after", function() assert(vm:exec("true").ok) end)
`)
	if st := r.res.Subtests; len(st) != 3 || st[0].Status != result.Passed || st[2].Status != result.Passed {
		t.Fatalf("sub-tests %+v", st)
	}
	f := r.failure(t, "warns")
	if want := "tests/t.lua:6: kernel report on minimal#1: WARNING in conf_ioctl"; !strings.HasSuffix(f.Message, want) {
		t.Errorf("message %q, want it to end with %q", f.Message, want)
	}
	if len(f.Reports) != 1 || f.Reports[0].Title != "WARNING in conf_ioctl" || f.Guest == nil {
		t.Errorf("failure %+v", f)
	}
	if r.res.Status != result.Failed {
		t.Errorf("file status %v", r.res.Status)
	}
}

func TestExpectKernel(t *testing.T) {
	r := runLua(t, `
local vm = provium.create("minimal"):boot()
test("expected and seen", function()
  expect_kernel("conf_ioctl")
  vm:exec("printk WARNING in conf_ioctl")
end)
test("expected, missing", function()
  expect_kernel("KASAN")
  vm:exec("true")
end)
test("noise the profile ignores", function() vm:exec("printk noise in some_driver") end)
provium.kernel_ignore("flaky_thing")
test("noise the file ignores", function() vm:exec("printk WARNING in flaky_thing") end)
`)
	want := map[string]result.Status{"expected and seen": result.Passed, "expected, missing": result.Failed,
		"noise the profile ignores": result.Passed, "noise the file ignores": result.Passed}
	for _, st := range r.res.Subtests {
		if st.Status != want[st.Name] {
			t.Errorf("%s: %v %+v", st.Name, st.Status, st.Failure)
		}
	}
	if f := r.failure(t, "expected, missing"); !strings.Contains(f.Message, `expected a kernel report matching "KASAN"; none appeared`) {
		t.Errorf("message %q", f.Message)
	}
	if !strings.Contains(r.log.String(), "kernel report (expected): WARNING in conf_ioctl") {
		t.Errorf("the log does not keep the expected report:\n%s", r.log.String())
	}
}

// A report outside any sub-test fails the file; kernel_reports returns
// every report.
func TestKernelReportAtFileScope(t *testing.T) {
	r := runLua(t, `
local vm = provium.create("minimal"):boot()
vm:exec("printk BUG: scheduling while atomic in foo")
test("sees it", function()
  local reps = vm:kernel_reports()
  assert_eq(1, #reps)
  assert_eq("BUG: scheduling while atomic in foo", reps[1].title)
  assert_eq("warning", reps[1].kind)
  assert_contains(reps[1].text, "Call Trace")
  assert(reps[1].time > 0)
end)
`)
	if st := r.res.Subtests; len(st) != 1 || st[0].Status != result.Passed {
		t.Fatalf("the report of the file scope was blamed on the sub-test: %+v", st)
	}
	if f := r.res.Failure; f == nil || !strings.Contains(f.Message, "kernel report on minimal#1: BUG: scheduling while atomic in foo") {
		t.Fatalf("file failure %+v", r.res.Failure)
	}
	if r.host.machine(0).drains == 0 {
		t.Error("the console was never drained")
	}
}
