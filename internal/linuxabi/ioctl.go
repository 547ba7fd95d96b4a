package linuxabi

import (
	"errors"
	"fmt"
)

// An ioctl request number packs four fields, as the _IOC macro of
// include/uapi/asm-generic/ioctl.h packs them on x86_64 and arm64:
//
//	bits  0-7   nr    the command number within its type
//	bits  8-15  type  the driver's letter, 'L' for loop devices
//	bits 16-29  size  the size of the argument the command reads or writes
//	bits 30-31  dir   IOCNone, IOCWrite, IOCRead or both
//
// Other architectures (powerpc, mips, sparc) use other widths; this package
// does not describe them.

// Directions of an ioctl's data transfer, seen from user space: IOCWrite
// means user space writes (the kernel reads the argument).
const (
	IOCNone  uint32 = 0
	IOCWrite uint32 = 1
	IOCRead  uint32 = 2
)

const (
	iocNRBits   = 8
	iocTypeBits = 8
	iocSizeBits = 14
	iocDirBits  = 2

	iocNRShift   = 0
	iocTypeShift = iocNRShift + iocNRBits
	iocSizeShift = iocTypeShift + iocTypeBits
	iocDirShift  = iocSizeShift + iocSizeBits
)

// ErrIOCRange is wrapped by the errors of IOC and its shorthands when a
// field does not fit in its bits.
var ErrIOCRange = errors.New("ioctl field out of range")

// IOC returns the request number _IOC(dir, typ, nr, size).
func IOC(dir, typ, nr, size uint32) (uint32, error) {
	for _, f := range []struct {
		name  string
		value uint32
		bits  uint
	}{
		{"direction", dir, iocDirBits},
		{"type", typ, iocTypeBits},
		{"number", nr, iocNRBits},
		{"size", size, iocSizeBits},
	} {
		if f.value >= 1<<f.bits {
			return 0, fmt.Errorf("ioctl %s %#x does not fit in %d bits: %w", f.name, f.value, f.bits, ErrIOCRange)
		}
	}
	return dir<<iocDirShift | typ<<iocTypeShift | nr<<iocNRShift | size<<iocSizeShift, nil
}
