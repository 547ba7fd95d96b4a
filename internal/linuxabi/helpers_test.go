package linuxabi

// Lookups of one entry, for the tests: the package itself hands out whole
// tables.

func syscallName(a Arch, nr int) (string, bool) {
	for name, n := range Syscalls(a) {
		if n == nr {
			return name, true
		}
	}
	return "", false
}

func errnoNumber(name string) (int, bool) {
	n, ok := Errnos()[name]
	return n, ok
}

func constant(a Arch, name string) (int64, bool) {
	v, ok := Constants(a)[name]
	return v, ok
}

var arches = []Arch{X86_64, ARM64}

func ioR(typ, nr, size uint32) (uint32, error)  { return IOC(IOCRead, typ, nr, size) }
func ioW(typ, nr, size uint32) (uint32, error)  { return IOC(IOCWrite, typ, nr, size) }
func ioWR(typ, nr, size uint32) (uint32, error) { return IOC(IOCRead|IOCWrite, typ, nr, size) }
func io(typ, nr uint32) (uint32, error)         { return IOC(IOCNone, typ, nr, 0) }
