package kernelreport

import "strings"

// A report's title names the function where the bug is, which is rarely the
// function that printed the report: the reporting machinery (dump_stack,
// __warn, kasan_report, lockdep's checks), the fault handlers, and generic
// helpers the buggy code called (memcpy, list_add, spin_lock) come first in
// a stack. The lists below name them; the first frame matching none is the
// one a title names.

// skipPrefixes are skipped in every report.
var skipPrefixes = []string{
	// Reporting.
	"dump_stack", "show_stack", "show_regs", "show_trace", "__show_regs",
	"__warn", "warn_slowpath", "report_bug", "handle_bug", "__report_bug",
	"panic", "vpanic", "nmi_", "__nmi", "die", "__die", "oops_",
	"print_report", "print_address_description", "print_circular_bug",
	"print_usage_bug", "print_deadlock_bug", "print_bad_irq_dependency",
	"print_lock", "print_irqtrace_events", "printk", "_printk", "vprintk",
	"kasan_", "__kasan_", "kfence_", "__kfence_", "kmsan_", "__msan_",
	"__asan_", "__ubsan_", "ubsan_", "check_memory_region",
	"__schedule_bug", "__might_sleep", "___might_sleep", "__might_resched",
	"__might_fault", "might_sleep", "__cant_sleep", "__cant_migrate",
	"spin_bug", "spin_dump", "rwlock_bug",
	// Traps and fault handling.
	"exc_", "asm_exc_", "do_error_trap", "do_trap", "do_int3", "fixup_bug",
	"page_fault_oops", "kernelmode_fixup_or_oops", "__bad_area", "bad_area",
	"do_user_addr_fault", "do_kern_addr_fault", "handle_page_fault",
	"no_context", "fixup_exception", "__pfx_",
	// Lockdep.
	"lockdep_", "__lockdep_", "lock_acquire", "lock_release", "lock_acquired",
	"lock_contended", "__lock_acquire", "__lock_release", "lock_is_held",
	"check_noncircular", "check_prev_add", "check_prevs_add", "check_deadlock",
	"check_irq_usage", "check_flags", "validate_chain", "mark_lock", "mark_usage",
	"mark_held_locks", "register_lock_class", "look_up_lock_class",
	"assign_lock_key", "debug_check_no_locks", "debug_show_held_locks",
	"rcu_lockdep_", "lockdep_rcu_suspicious",
	// Locking primitives.
	"_raw_spin_", "_raw_read_", "_raw_write_", "do_raw_spin_", "do_raw_read_",
	"do_raw_write_", "queued_spin_lock", "native_queued_spin_lock",
	"queued_read_lock", "queued_write_lock", "__pv_queued_spin",
	"mutex_lock", "__mutex_lock", "mutex_unlock", "__mutex_unlock",
	"mutex_trylock", "down_read", "down_write", "up_read", "up_write",
	"rwsem_", "__rwsem_", "rt_mutex", "__rt_mutex", "rt_spin_",
	// Checked helpers.
	"__list_add_valid", "__list_del_entry_valid", "__list_add", "__list_del",
	"list_add", "list_del", "refcount_", "__refcount_",
}

// skipExact are helpers skipped in every report that are too short a name
// to match by prefix.
var skipExact = map[string]bool{
	"memcpy": true, "memmove": true, "memset": true, "memcmp": true, "memchr": true,
	"__memcpy": true, "__memmove": true, "__memset": true, "memcpy_orig": true,
	"memset_orig": true, "memmove_orig": true, "bcmp": true,
	"strcpy": true, "strncpy": true, "strlcpy": true, "strscpy": true,
	"sized_strscpy": true, "strlen": true, "strnlen": true, "strcmp": true,
	"strncmp": true, "strchr": true, "strrchr": true, "strstr": true,
	"strnstr": true, "strcat": true, "strncat": true,
	"copy_to_user": true, "copy_from_user": true, "_copy_to_user": true,
	"_copy_from_user": true, "raw_copy_to_user": true, "raw_copy_from_user": true,
	"rep_movs_alternative": true, "copy_user_generic": true,
	"copy_user_enhanced_fast_string": true, "copy_user_generic_string": true,
	"copy_user_generic_unrolled": true, "strncpy_from_user": true,
	"__get_user_1": true, "__get_user_2": true, "__get_user_4": true,
	"__get_user_8": true, "__put_user_1": true, "__put_user_2": true,
	"__put_user_4": true, "__put_user_8": true,
}

// Further substrings skipped in particular kinds of report.
var (
	// A hung task is stuck in the scheduler, waiting on a lock or a
	// completion; the function that waits is the one to name.
	hungSkip = []string{"sched", "_lock", "_slowlock", "down", "completion",
		"kthread", "wait", "synchronize", "context_switch", "__switch_to",
		"cancel_delayed_work", "msleep", "usleep_range", "ssleep", "fsleep",
		"__flush_work", "flush_work"}
	// A sleeping function called in atomic context, or a schedule while
	// atomic, was called from a function that slept or allocated.
	sleepSkip = append(append([]string{}, hungSkip...), leakSkip...)
	// A stalled CPU was interrupted by the timer or an NMI to report the
	// stall; the interrupted code is the one to name.
	stallSkip = []string{"apic_timer_interrupt", "sysvec_", "irq_exit",
		"irqentry", "__irq_", "handle_softirqs", "__do_softirq", "rcu",
		"nmi", "watchdog", "hrtimer", "tick_", "update_process_times",
		"asm_", "default_idle", "safe_halt", "arch_cpu_idle", "cpu_idle",
		"do_idle", "cpu_startup_entry", "start_secondary", "acpi_idle",
		"intel_idle", "poll_idle", "cpuidle_enter"}
	// A leaked object's backtrace starts in the allocator.
	leakSkip = []string{"kmemleak", "kmalloc", "kcalloc", "kzalloc",
		"krealloc", "kvmalloc", "kvzalloc", "kvcalloc", "vmalloc", "vzalloc",
		"kmem_cache_alloc", "slab_", "slab_alloc", "alloc_pages",
		"__alloc_pages", "folio_alloc", "kmemdup", "memdup", "kstrdup",
		"kstrndup", "kasprintf", "kvasprintf", "create_object",
		"pcpu_alloc", "alloc_percpu", "__get_free_pages", "get_zeroed_page",
		"idr_get", "__kmem_cache"}
	ubsanSkip = []string{"ubsan"}
	rcuSkip   = []string{"rcu", "lockdep"}
)

// skipped reports whether fn is a function a title does not name.
func skipped(fn string, extra []string) bool {
	if skipExact[fn] {
		return true
	}
	for _, p := range skipPrefixes {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	for _, s := range extra {
		if strings.Contains(fn, s) {
			return true
		}
	}
	return false
}
