// SPDX-License-Identifier: GPL-2.0
/*
 * provium_crash: provokes real kernel reports on demand, so that Provium's
 * end-to-end tests can check how it detects them.
 *
 * Writing a word to /proc/provium_crash (write-only, root) triggers:
 *
 *   warn          WARN_ON(1)
 *   bug           BUG(): an Oops that kills the writer
 *   leak          64 bytes allocated and never freed
 *   atomic_sleep  a sleep with preemption disabled
 *   null          a NULL pointer dereference: an Oops that kills the writer
 *   panic         panic()
 *
 * Each trigger lives in its own noinline function named after it, so the
 * report's first line or call trace names the trigger (e.g.
 * "provium_crash_warn+0x.../0x... [provium_crash]").
 *
 * The file is in proc rather than debugfs because debugfs may not be
 * mounted in a minimal guest.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bug.h>
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/proc_fs.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#define LEAK_SIZE 64

static noinline void provium_crash_warn(void)
{
	WARN_ON(1);
}

static noinline void provium_crash_bug(void)
{
	BUG();
}

static noinline void provium_crash_leak(void)
{
	void *p = kmalloc(LEAK_SIZE, GFP_KERNEL);

	/* The pointer is dropped on purpose: kmemleak, where the kernel has
	 * it, reports the object as unreferenced. */
	if (p)
		pr_info("leaked %d bytes\n", LEAK_SIZE);
}

static noinline void provium_crash_atomic_sleep(void)
{
	preempt_disable();
	/* The scheduler sees a non-zero preempt count and prints "BUG:
	 * scheduling while atomic". That check needs only PREEMPT_COUNT,
	 * not DEBUG_ATOMIC_SLEEP, so it fires on distribution kernels. */
	msleep(1);
	/* Having reported, the scheduler resets the preempt count, which
	 * drops our disable; enabling again would underflow the count. */
	if (preempt_count())
		preempt_enable();
}

static noinline void provium_crash_null(void)
{
	/* volatile keeps the compiler from proving the pointer NULL and
	 * turning the load into a trap of its own. */
	int *volatile p = NULL;

	pr_info("read %d\n", *p);
}

static noinline void provium_crash_panic(void)
{
	panic("provium_crash: requested panic");
}

static const struct {
	const char *word;
	void (*fn)(void);
} triggers[] = {
	{ "warn", provium_crash_warn },
	{ "bug", provium_crash_bug },
	{ "leak", provium_crash_leak },
	{ "atomic_sleep", provium_crash_atomic_sleep },
	{ "null", provium_crash_null },
	{ "panic", provium_crash_panic },
};

static ssize_t provium_crash_write(struct file *file, const char __user *ubuf,
				   size_t count, loff_t *ppos)
{
	char word[16];
	int i;

	if (count >= sizeof(word))
		return -EINVAL;
	if (copy_from_user(word, ubuf, count))
		return -EFAULT;
	word[count] = '\0';

	for (i = 0; i < ARRAY_SIZE(triggers); i++) {
		/* sysfs_streq ignores the newline that echo appends. */
		if (sysfs_streq(word, triggers[i].word)) {
			triggers[i].fn();
			return count;
		}
	}
	return -EINVAL;
}

static const struct proc_ops provium_crash_ops = {
	.proc_write = provium_crash_write,
	.proc_lseek = noop_llseek,
};

static int __init provium_crash_init(void)
{
	if (!proc_create("provium_crash", 0200, NULL, &provium_crash_ops))
		return -ENOMEM;
	return 0;
}

static void __exit provium_crash_exit(void)
{
	remove_proc_entry("provium_crash", NULL);
}

module_init(provium_crash_init);
module_exit(provium_crash_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Provokes kernel reports on demand for Provium's tests");
