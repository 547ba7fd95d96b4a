package guestinit

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// logf writes one line to the console.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "provium-init: "+format+"\n", args...)
}

// ensureStdio puts /dev/console on standard streams that are closed or
// /dev/null. The kernel gives init the console only if /dev/console existed
// when it looked; otherwise Go's runtime fills the gaps with /dev/null and
// error messages would vanish. Now that devtmpfs is mounted, the console
// is there.
func ensureStdio() {
	for fd := 0; fd <= 2; fd++ {
		if usable(fd) {
			continue
		}
		// Not close-on-exec: the real init inherits these.
		c, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			return
		}
		if c != fd {
			unix.Dup3(c, fd, 0)
			unix.Close(c)
		}
	}
}

// usable reports whether fd is open on something other than /dev/null.
func usable(fd int) bool {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3)
}
