package kernelreport

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const rule66 = "=================================================================="

type wantReport struct {
	kind  Kind
	title string
	first string // first line of Text
	last  string // last line of Text
}

func readSample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func lastLine(s string) string { return s[strings.LastIndexByte(s, '\n')+1:] }

func checkReports(t *testing.T, got []Report, want []wantReport) {
	t.Helper()
	if len(got) != len(want) {
		for _, r := range got {
			t.Logf("got %s %q\n%s", r.Kind, r.Title, r.Text)
		}
		t.Fatalf("got %d reports, want %d", len(got), len(want))
	}
	for i, w := range want {
		r := got[i]
		if r.Kind != w.kind {
			t.Errorf("report %d: kind %q, want %q", i, r.Kind, w.kind)
		}
		if r.Title != w.title {
			t.Errorf("report %d: title %q, want %q", i, r.Title, w.title)
		}
		if f := firstLine(r.Text); f != w.first {
			t.Errorf("report %d: text starts with %q, want %q", i, f, w.first)
		}
		if l := lastLine(r.Text); l != w.last {
			t.Errorf("report %d: text ends with %q, want %q", i, l, w.last)
		}
	}
}

func TestSamples(t *testing.T) {
	const endTrace = "---[ end trace 0000000000000000 ]---"
	tests := []struct {
		file string
		want []wantReport
	}{
		{"warning.log", []wantReport{{KindWarning, "WARNING in conf_ioctl",
			"------------[ cut here ]------------", endTrace}}},
		{"kasan_uaf.log", []wantReport{{KindKASAN, "KASAN: use-after-free Read in foo_release", rule66, rule66}}},
		{"kfence.log", []wantReport{{KindKFENCE, "KFENCE: use-after-free read in cache_lookup", rule66, rule66}}},
		{"ubsan.log", []wantReport{{KindUBSAN, "UBSAN: shift-out-of-bounds in mask_compute",
			strings.Repeat("=", 80), strings.Repeat("=", 80)}}},
		{"kmemleak.log", []wantReport{
			{KindKmemleak, "memory leak in leak_init", "unreferenced object 0xffff888003a0c000 (size 32):",
				"    [<ffffffff9ac000ea>] entry_SYSCALL_64_after_hwframe+0x6e/0xd8"},
			{KindKmemleak, "memory leak in conf_set_name", "unreferenced object 0xffff888004f1e2c0 (size 64):",
				"    [<ffffffff9ac000ea>] entry_SYSCALL_64_after_hwframe+0x6e/0xd8"},
		}},
		{"sysrq_panic.log", []wantReport{{KindPanic, "kernel panic: sysrq triggered crash",
			"Kernel panic - not syncing: sysrq triggered crash",
			"---[ end Kernel panic - not syncing: sysrq triggered crash ]---"}}},
		{"bug_oops.log", []wantReport{{KindBug, "kernel BUG in state_check",
			"------------[ cut here ]------------", endTrace}}},
		{"null_deref.log", []wantReport{
			{KindOops, "BUG: kernel NULL pointer dereference in node_first",
				"BUG: kernel NULL pointer dereference, address: 0000000000000008", endTrace},
			{KindPanic, "kernel panic: Fatal exception", "Kernel panic - not syncing: Fatal exception",
				"---[ end Kernel panic - not syncing: Fatal exception ]---"},
		}},
		{"gpf.log", []wantReport{{KindOops, "general protection fault in name_show",
			"general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN NOPTI",
			endTrace}}},
		{"sched_atomic.log", []wantReport{{KindBug, "BUG: scheduling while atomic in stats_update",
			"BUG: scheduling while atomic: provium-agent/290/0x00000002", " </TASK>"}}},
		{"sleeping.log", []wantReport{{KindLockdep, "BUG: sleeping function called from invalid context in dev_reset",
			"BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580", " </TASK>"}}},
		{"hung_task.log", []wantReport{{KindHungTask, "INFO: task hung in conf_get",
			"INFO: task provium-agent:301 blocked for more than 120 seconds.", " </TASK>"}}},
		{"rcu_stall.log", []wantReport{{KindRCUStall, "INFO: rcu detected stall in spin_forever",
			"rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", " </TASK>"}}},
		{"soft_lockup.log", []wantReport{{KindSoftLockup, "BUG: soft lockup in spin_forever",
			"watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [provium-agent:312]", " </TASK>"}}},
		{"lockdep_circular.log", []wantReport{{KindLockdep, "possible deadlock in stats_flush",
			"======================================================", " </TASK>"}}},
		{"boot.log", nil},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".log"), func(t *testing.T) {
			checkReports(t, Parse(readSample(t, tt.file)), tt.want)
		})
	}
}

// TestNaturalEnd pins that reports end at their own last line, before the
// caller flushes: the harness waits for a quiet console only while Open.
func TestNaturalEnd(t *testing.T) {
	tests := []struct {
		file      string
		open      bool // still open after the last line
		following string
	}{
		{"warning.log", false, ""},
		{"kasan_uaf.log", false, ""},
		{"sysrq_panic.log", false, ""},
		{"hung_task.log", false, "Showing all locks held in the system:"},
		{"lockdep_circular.log", false, ""},
		{"soft_lockup.log", false, ""},
		{"sleeping.log", false, ""},
		// An RCU stall dumps one stack per stalled CPU and has no last line.
		{"rcu_stall.log", true, ""},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".log"), func(t *testing.T) {
			var got []Report
			d := NewDetector(func(r Report) { got = append(got, r) })
			for l := range strings.SplitSeq(readSample(t, tt.file), "\n") {
				d.Line(l, time.Time{})
			}
			if d.Open() != tt.open {
				t.Fatalf("Open() = %v after the report, want %v", d.Open(), tt.open)
			}
			if tt.open != (len(got) == 0) {
				t.Fatalf("%d reports emitted before Flush, open %v", len(got), tt.open)
			}
			if tt.following != "" {
				d.Line("[  243.000000] "+tt.following, time.Time{})
			}
			d.Flush(time.Time{})
			if len(got) != 1 {
				t.Fatalf("got %d reports, want 1", len(got))
			}
			if tt.following != "" && strings.Contains(got[0].Text, tt.following) {
				t.Errorf("a line after the report's end joined it")
			}
		})
	}
}

// warnLines is a WARNING as the console shows it without prefixes.
var warnLines = []string{
	"------------[ cut here ]------------",
	"WARNING: CPU: 0 PID: 1 at drivers/misc/provium_crash.c:42 conf_ioctl+0x4e/0x90 [provium_crash]",
	"Modules linked in: provium_crash(OE)",
	"RIP: 0010:conf_ioctl+0x4e/0x90 [provium_crash]",
	"Call Trace:",
	" <TASK>",
	" __x64_sys_ioctl+0x8d/0xd0",
	" do_syscall_64+0x55/0xb0",
	" </TASK>",
	"---[ end trace 0000000000000000 ]---",
}

func TestLinePrefixes(t *testing.T) {
	stamp := func(i int) string { return fmt.Sprintf("[%5d.%06d] ", 12, i) }
	tests := []struct {
		name string
		line func(i int, l string) string
	}{
		{"no prefix", func(i int, l string) string { return l }},
		{"timestamp", func(i int, l string) string { return stamp(i) + l }},
		{"timestamp and task caller", func(i int, l string) string { return stamp(i)[:14] + "[  T245] " + l }},
		{"timestamp and cpu caller", func(i int, l string) string { return stamp(i)[:14] + "[    C1] " + l }},
		{"log level", func(i int, l string) string { return "<4>" + l }},
		{"log level and timestamp", func(i int, l string) string { return "<4>" + stamp(i) + l }},
		{"carriage return", func(i int, l string) string { return stamp(i) + l + "\r" }},
		{"glued to a shell prompt", func(i int, l string) string {
			if i == 1 {
				return "root@provium:~# " + stamp(i) + l
			}
			return stamp(i) + l
		}},
	}
	want := strings.Join(warnLines, "\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines []string
			for i, l := range warnLines {
				lines = append(lines, tt.line(i, l))
			}
			got := Parse(strings.Join(lines, "\n"))
			if len(got) != 1 {
				t.Fatalf("got %d reports, want 1", len(got))
			}
			if got[0].Title != "WARNING in conf_ioctl" {
				t.Errorf("title %q", got[0].Title)
			}
			if got[0].Text != want {
				t.Errorf("text:\n%s\nwant:\n%s", got[0].Text, want)
			}
		})
	}
}

// TestForeignLines pins that another program's lines in the middle of a
// timestamped report neither end it nor join it, even when they look like
// kernel lines.
func TestForeignLines(t *testing.T) {
	foreign := []string{
		"provium-agent: worker 1 ready",
		"---[ end trace 0000000000000000 ]---",
		"BUG: this is a test program's output",
		"",
		" </TASK>",
	}
	var lines []string
	for i, l := range warnLines {
		lines = append(lines, fmt.Sprintf("[   12.%06d] %s", i, l))
		if i > 0 && i <= len(foreign) {
			lines = append(lines, foreign[i-1])
		}
	}
	checkReports(t, Parse(strings.Join(lines, "\n")), []wantReport{{KindWarning, "WARNING in conf_ioctl",
		warnLines[0], warnLines[len(warnLines)-1]}})
	if got := Parse(strings.Join(lines, "\n"))[0].Text; got != strings.Join(warnLines, "\n") {
		t.Errorf("text:\n%s", got)
	}
}

func TestBackToBack(t *testing.T) {
	// A WARNING cut short (no end marker) and a KASAN report right after.
	log := strings.Join(warnLines[:8], "\n") + "\n" + strings.Join([]string{
		rule66,
		"BUG: KASAN: slab-out-of-bounds in conf_apply+0x71/0x90 [provium_crash]",
		"Write of size 4 at addr ffff888004e3a040 by task provium-agent/251",
		"Call Trace:",
		" <TASK>",
		" dump_stack_lvl+0x49/0x63",
		" kasan_report+0xc4/0x100",
		" conf_apply+0x71/0x90 [provium_crash]",
		" </TASK>",
		rule66,
		"unreferenced object 0xffff888003a0c000 (size 32):",
		"  backtrace:",
		"    [<ffffffff9a2f6bd1>] kmalloc_trace+0x21/0x90",
		"    [<ffffffffc0a1101e>] leak_init+0x1e/0x1000 [provium_crash]",
		"unreferenced object 0xffff888003a0c040 (size 32):",
		"  backtrace:",
		"    [<ffffffff9a2f6bd1>] kmalloc_trace+0x21/0x90",
		"    [<ffffffffc0a1101e>] leak_init+0x1e/0x1000 [provium_crash]",
	}, "\n")
	checkReports(t, Parse(log), []wantReport{
		{KindWarning, "WARNING in conf_ioctl", warnLines[0], warnLines[7]},
		{KindKASAN, "KASAN: slab-out-of-bounds Write in conf_apply", rule66, rule66},
		{KindKmemleak, "memory leak in leak_init", "unreferenced object 0xffff888003a0c000 (size 32):",
			"    [<ffffffffc0a1101e>] leak_init+0x1e/0x1000 [provium_crash]"},
		{KindKmemleak, "memory leak in leak_init", "unreferenced object 0xffff888003a0c040 (size 32):",
			"    [<ffffffffc0a1101e>] leak_init+0x1e/0x1000 [provium_crash]"},
	})
}

func TestFlushEndsReport(t *testing.T) {
	var got []Report
	d := NewDetector(func(r Report) { got = append(got, r) })
	lines := strings.Split(readSample(t, "hung_task.log"), "\n")
	for _, l := range lines[:12] {
		d.Line(l, time.Time{})
	}
	if !d.Open() || len(got) != 0 {
		t.Fatalf("after part of a report: Open() = %v, %d reports", d.Open(), len(got))
	}
	d.Flush(time.Time{})
	if d.Open() {
		t.Errorf("Open() after Flush")
	}
	checkReports(t, got, []wantReport{{KindHungTask, "INFO: task hung in conf_get",
		"INFO: task provium-agent:301 blocked for more than 120 seconds.", " conf_get+0x1d/0x40 [provium_crash]"}})
}

func TestBounds(t *testing.T) {
	t.Run("lines", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("INFO: task sh:1 blocked for more than 120 seconds.\nCall Trace:\n")
		for i := range 2 * MaxLines {
			fmt.Fprintf(&b, " recurse_%d+0x1c/0x40\n", i)
		}
		got := Parse(b.String())
		if len(got) != 1 {
			t.Fatalf("got %d reports, want 1", len(got))
		}
		if n := strings.Count(got[0].Text, "\n") + 1; n != MaxLines {
			t.Errorf("report has %d lines, want %d", n, MaxLines)
		}
		if got[0].Title != "INFO: task hung in recurse_0" {
			t.Errorf("title %q", got[0].Title)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("BUG: Bad page state in process sh  pfn:01234\n")
		long := strings.Repeat("x", 3*MaxLineBytes)
		for range 2 * MaxBytes / MaxLineBytes {
			b.WriteString(long + "\n")
		}
		got := Parse(b.String())
		if len(got) != 1 {
			t.Fatalf("got %d reports, want 1", len(got))
		}
		if len(got[0].Text) > MaxBytes {
			t.Errorf("report text of %d bytes exceeds %d", len(got[0].Text), MaxBytes)
		}
		for l := range strings.SplitSeq(got[0].Text, "\n") {
			if len(l) > MaxLineBytes {
				t.Fatalf("line of %d bytes kept", len(l))
			}
		}
	})
}

func TestTime(t *testing.T) {
	t0 := time.Date(2024, 2, 1, 12, 0, 0, 0, time.UTC)
	var got []Report
	d := NewDetector(func(r Report) { got = append(got, r) })
	d.Line("[    1.000000] ordinary line", t0)
	for i, l := range warnLines {
		d.Line("[    2.000000] "+l, t0.Add(time.Duration(i+1)*time.Second))
	}
	if len(got) != 1 || !got[0].Time.Equal(t0.Add(time.Second)) {
		t.Fatalf("got %v, want one report at the time of its first line", got)
	}
}

func TestControlCharacters(t *testing.T) {
	got := Parse("Kernel panic - not syncing: bad\x1b[31m\x07 thing\xff")
	if len(got) != 1 {
		t.Fatalf("got %d reports", len(got))
	}
	for _, s := range []string{got[0].Title, got[0].Text} {
		if strings.ContainsAny(s, "\x1b\x07") || !utf8Valid(s) {
			t.Errorf("control characters or invalid UTF-8 kept: %q", s)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

// TestTitles pins title shapes beyond the samples, and that they do not
// change with what varies from run to run.
func TestTitles(t *testing.T) {
	tests := []struct {
		name  string
		log   string
		kind  Kind
		title string
	}{
		{"warning in newest format",
			"WARNING: net/mac80211/tx.c:5012 at __ieee80211_beacon_get+0x125d/0x1630, CPU#1: syz.9.803/11907\nCall Trace:\n <IRQ>\n ieee80211_beacon_get_tim+0x1/0x2\n </IRQ>",
			KindWarning, "WARNING in __ieee80211_beacon_get"},
		{"warning in a refcount helper names the caller",
			"WARNING: CPU: 1 PID: 7 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110\nRIP: 0010:refcount_warn_saturate+0xba/0x110\nCall Trace:\n <TASK>\n ? __warn+0x7d/0xc0\n ? refcount_warn_saturate+0xba/0x110\n conf_put+0x22/0x30 [provium_crash]\n </TASK>\n---[ end trace 0000000000000000 ]---",
			KindWarning, "WARNING in conf_put"},
		{"warning without a function",
			"WARNING: CPU: 3 PID: 4711 at 0xffffffffc0001234\n---[ end trace 0000000000000000 ]---",
			KindWarning, "WARNING: CPU: PID: at"},
		{"kasan in a list helper names the caller",
			"BUG: KASAN: slab-use-after-free in __list_add_valid_or_report+0x16a/0x1a0\nRead of size 8 at addr ffff888012acfc20 by task syz/9489\nCall Trace:\n <TASK>\n dump_stack_lvl+0x116/0x1b0\n print_report+0xc1/0x630\n kasan_report+0x96/0xd0\n __list_add_valid_or_report+0x16a/0x1a0\n chrdev_open+0x3a7/0x590\n </TASK>",
			KindKASAN, "KASAN: slab-use-after-free Read in chrdev_open"},
		{"kasan double free",
			"BUG: KASAN: double-free in foo_close+0x3b/0x50 [provium_crash]\nFree of addr ffff888004e3a000 by task sh/1",
			KindKASAN, "KASAN: double-free in foo_close"},
		{"panic killing init ignores the exit code",
			"Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b",
			KindPanic, "kernel panic: Attempted to kill init!"},
		{"panic with a function",
			"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: conf_ioctl+0x90/0x90 [provium_crash]",
			KindPanic, "kernel panic: stack-protector: Kernel stack is corrupted in: conf_ioctl [provium_crash]"},
		{"page fault",
			"BUG: unable to handle page fault for address: ffffc90000a3e000\n#PF: supervisor write access in kernel mode\nOops: 0002 [#1] PREEMPT SMP NOPTI\nRIP: 0010:buf_fill+0x11/0x30 [provium_crash]\n---[ end trace 0000000000000000 ]---",
			KindOops, "BUG: unable to handle page fault in buf_fill"},
		{"oops header of 6.10 and later",
			"Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN NOPTI\nRIP: 0010:name_show+0x3f/0x90\n---[ end trace 0000000000000000 ]---",
			KindOops, "general protection fault in name_show"},
		{"arm64 null dereference",
			"Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008\nMem abort info:\n  ESR = 0x0000000096000005\nInternal error: Oops: 0000000096000005 [#1] PREEMPT SMP\npc : node_first+0x8/0x18 [provium_crash]\nlr : list_ioctl+0x2c/0x60 [provium_crash]\n---[ end trace 0000000000000000 ]---",
			KindOops, "unable to handle kernel NULL pointer dereference in node_first"},
		{"invalid opcode alone",
			"invalid opcode: 0000 [#1] PREEMPT SMP NOPTI\nRIP: 0010:state_check+0x12/0x20\n---[ end trace 0000000000000000 ]---",
			KindOops, "invalid opcode in state_check"},
		{"generic BUG drops numbers",
			"BUG: using smp_processor_id() in preemptible [00000000] code: insmod/4242\ncaller is debug_smp_processor_id+0x17/0x20\nCall Trace:\n <TASK>\n dump_stack_lvl+0x44/0x5c\n check_preemption_disabled+0xdd/0xe0\n </TASK>",
			KindBug, "BUG: using smp_processor_id() in preemptible code"},
		{"hung task with a garbled name",
			"INFO: task \xff\xfe\nCall Trace:\n <TASK>\n __schedule+0x10e9/0x6820\n schedule+0xdd/0x390\n __wait_for_common+0x2e7/0x4c0\n p9_fd_close+0x299/0x5a0\n </TASK>",
			KindHungTask, "INFO: task hung in p9_fd_close"},
		{"kmemleak printed by kmemleak itself",
			"kmemleak: unreferenced object 0xffff888003a0c000 (size 32):\nkmemleak:   comm \"insmod\", pid 213, jiffies 4294893123\nkmemleak:   backtrace (crc 8e8ac1b4):\nkmemleak:     kmalloc_trace+0x26/0x90\nkmemleak:     leak_init+0x1e/0x1000 [provium_crash]",
			KindKmemleak, "memory leak in leak_init"},
		{"inconsistent lock state",
			"WARNING: inconsistent lock state\n6.1.0 #1 Not tainted\n--------------------------------\ninconsistent {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W} usage.\nksoftirqd/1/24 [HC0[0]:SC1[1]:HE1:SE0] takes:\nffff88807d34c260 (sk_lock-AF_X25){+.?.}-{0:0}, at: x25_kill_by_neigh+0x10d/0x250\n",
			KindLockdep, "inconsistent lock state in x25_kill_by_neigh"},
		{"bad unlock balance",
			"WARNING: bad unlock balance detected!\n6.1.0 #1 Not tainted\n-------------------------------------\nsh/1 is trying to release lock (&conf_lock) at:\n[<ffffffffc0a1101e>] conf_release+0x1e/0x40 [provium_crash]\nbut there are no more locks to release!",
			KindLockdep, "WARNING: bad unlock balance in conf_release"},
		{"suspicious RCU usage",
			"WARNING: suspicious RCU usage\n6.1.0 #1 Not tainted\n-----------------------------\ndrivers/misc/provium_crash.c:99 suspicious rcu_dereference_check() usage!\nCall Trace:\n <TASK>\n dump_stack_lvl+0x44/0x5c\n lockdep_rcu_suspicious+0x150/0x1a0\n conf_peek+0x41/0x60 [provium_crash]\n </TASK>",
			KindLockdep, "WARNING: suspicious RCU usage in conf_peek"},
		{"spinlock debug",
			"BUG: spinlock bad magic on CPU#0, sh/1\n lock: conf_spin+0x0/0x40, .magic: 00000000, .owner: <none>/-1, .owner_cpu: 0\nCall Trace:\n <TASK>\n dump_stack_lvl+0x44/0x5c\n do_raw_spin_lock+0x9a/0xc0\n _raw_spin_lock+0x1d/0x30\n conf_touch+0x12/0x30 [provium_crash]\n </TASK>",
			KindLockdep, "BUG: spinlock bad magic in conf_touch"},
		{"hard lockup",
			"watchdog: Watchdog detected hard LOCKUP on cpu 1\nRIP: 0010:spin_irqsoff+0x5/0x10 [provium_crash]\nCall Trace:\n <TASK>\n conf_ioctl+0x77/0x90\n </TASK>",
			KindSoftLockup, "watchdog: hard lockup in spin_irqsoff"},
		{"slub debugging",
			"BUG kmalloc-64 (Tainted: G    B      OE     ): Poison overwritten\n-----------------------------------------------------------------------------\n",
			KindBug, "BUG: Poison overwritten"},
		{"kcsan data race",
			"BUG: KCSAN: data-race in stats_add+0x1a/0x40 / stats_read+0x2b/0x50\n",
			KindBug, "KCSAN: data-race in stats_add / stats_read"},
		{"unwinder warning is one line",
			"WARNING: kernel stack regs at 00000000a1b2c3d4 in sh:1 has bad 'bp' value 0000000000000000",
			KindWarning, "WARNING: kernel stack regs has bad value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse(tt.log)
			if len(got) != 1 {
				for _, r := range got {
					t.Logf("%s %q", r.Kind, r.Title)
				}
				t.Fatalf("got %d reports, want 1", len(got))
			}
			if got[0].Kind != tt.kind || got[0].Title != tt.title {
				t.Errorf("got %s %q, want %s %q", got[0].Kind, got[0].Title, tt.kind, tt.title)
			}
		})
	}
}

var stampRe = regexp.MustCompile(`\[ *(\d+)\.`)

// TestTitleStable pins that a title does not change when only addresses,
// offsets, PIDs, CPU numbers and timings do.
func TestTitleStable(t *testing.T) {
	for _, file := range []string{"warning.log", "kasan_uaf.log", "null_deref.log", "hung_task.log",
		"rcu_stall.log", "soft_lockup.log", "lockdep_circular.log", "kmemleak.log", "sched_atomic.log"} {
		t.Run(strings.TrimSuffix(file, ".log"), func(t *testing.T) {
			log := readSample(t, file)
			varied := strings.NewReplacer(
				"+0x", "+0x1", "/0x", "/0x2", "ffff", "eeee", "PID: ", "PID: 9", "pid:", "pid:7",
				"CPU: 0", "CPU: 1", "CPU#1", "CPU#0", "22s", "48s", ":301", ":999", "/320", "/999",
				"/290/", "/4242/",
			).Replace(log)
			varied = stampRe.ReplaceAllString(varied, "[ 9$1.")
			a, b := Parse(log), Parse(varied)
			if len(a) == 0 || len(a) != len(b) {
				t.Fatalf("%d and %d reports", len(a), len(b))
			}
			for i := range a {
				if a[i].Title != b[i].Title {
					t.Errorf("title %q became %q", a[i].Title, b[i].Title)
				}
			}
		})
	}
}

// TestBootAndReport pins that a report among ordinary boot messages is
// found with nothing of the boot before it.
func TestBootAndReport(t *testing.T) {
	log := readSample(t, "boot.log") + "\n" + readSample(t, "warning.log") + "\n" + readSample(t, "boot.log")
	checkReports(t, Parse(log), []wantReport{{KindWarning, "WARNING in conf_ioctl",
		"------------[ cut here ]------------", "---[ end trace 0000000000000000 ]---"}})
}

func TestClean(t *testing.T) {
	tests := []struct {
		in      string
		msg     string
		stamped bool
	}{
		{"[    1.234567] hello", "hello", true},
		{"[    1.234567]  frame+0x1/0x2", " frame+0x1/0x2", true},
		{"[    1.234567][  T123] hello", "hello", true},
		{"[    1.234567] [    C0] hello", "hello", true},
		{"<6>[    1.234567] hello", "hello", true},
		{"[    1.234567] <4>hello", "hello", true},
		{"<4>hello\r", "hello", false},
		{"[ 1] not a timestamp", "[ 1] not a timestamp", false},
		{"[Firmware Bug]: x", "[Firmware Bug]: x", false},
		{"# [   12.000001] BUG: x", "BUG: x", true},
		{"[    1.234567]", "", true},
		{"<123456>x", "<123456>x", false},
		{"[  T123] hello", "hello", true},
	}
	for _, tt := range tests {
		msg, stamped := clean(tt.in)
		if msg != tt.msg || stamped != tt.stamped {
			t.Errorf("clean(%q) = %q, %v; want %q, %v", tt.in, msg, stamped, tt.msg, tt.stamped)
		}
	}
}

// Reports that the project's test module provoked on Debian's 6.1 cloud
// kernel, as its console showed them.
func TestRealReportsOfTheTestModule(t *testing.T) {
	for file, want := range map[string][2]string{
		"crashmod_warn.txt":         {"warning", "WARNING in provium_crash_warn"},
		"crashmod_bug.txt":          {"bug", "kernel BUG in provium_crash_bug"},
		"crashmod_null.txt":         {"oops", "BUG: kernel NULL pointer dereference in provium_crash_null"},
		"crashmod_atomic_sleep.txt": {"bug", "BUG: scheduling while atomic in provium_crash_atomic_sleep"},
		"crashmod_panic.txt":        {"panic", "kernel panic: provium_crash: requested panic"},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		reps := Parse(string(b))
		if len(reps) == 0 || string(reps[0].Kind) != want[0] || reps[0].Title != want[1] {
			t.Errorf("%s: %+v, want %s %q first", file, reps, want[0], want[1])
		}
	}
}
