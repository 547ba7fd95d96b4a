package wire

import "fmt"

// Op identifies a request. A reply carries OpReply or OpError and the
// request's ID.
type Op uint16

// Channels. ControlChannel carries the handshake and VM-wide requests;
// MainChannel is the agent's own identity; workers get channels the host
// picks, above MainChannel.
const (
	ControlChannel uint32 = 0
	MainChannel    uint32 = 1
)

const (
	OpReply Op = iota + 1
	OpError

	// Control channel.
	OpHello    // host -> guest, meta Hello; reply HelloReply
	OpQuiesce  // kill workers and jobs; reply when none is left
	OpPowerOff // sync and power off; reply before powering off

	// Identity channels.
	OpPing       // no meta; reply no meta
	OpExec       // meta Exec, blob 0 stdin; reply ExecResult, blobs stdout, stderr
	OpReadFile   // meta Path; reply blob 0 data
	OpWriteFile  // meta WriteFile, blob 0 data; reply no meta
	OpSyscall    // meta Syscall, blobs buffer contents; reply SyscallResult, blobs
	OpBackground // meta Exec (no stdin, no timeout); reply Job
	OpJobWait    // meta JobWait; reply JobStatus, blobs stdout, stderr
	OpJobKill    // meta JobWait (timeout ignored); reply JobStatus, blobs stdout, stderr
	OpSpawn      // meta Spawn; reply SpawnReply
	OpClose      // end this identity (worker kill); reply no meta, then the channel is gone
	OpDmesg      // reply blob 0 kernel log
	OpMountVFS   // reply no meta

	// Control channel, guest -> host, unasked: an agent that starts
	// announces itself (meta Announce, epoch 0, id 0).
	OpAnnounce

	// Terminals. A terminal opens on an identity channel, so its shell
	// has that identity's credentials; it is then driven on the control
	// channel, where a read that waits holds up no identity.
	OpPtyOpen   // identity channel, meta PtyOpen; reply PtyOpened
	OpPtyRead   // control, meta PtyRead; reply PtyOutput, blob 0 output
	OpPtyWrite  // control, meta PtyID, blob 0 input; reply no meta
	OpPtyResize // control, meta PtyResize; reply no meta
	OpPtyClose  // control, meta PtyID: hang up and kill; reply no meta

	// Control channel.
	OpSetClock // meta SetClock; reply no meta
)

var opNames = map[Op]string{
	OpReply: "reply", OpError: "error", OpHello: "hello", OpQuiesce: "quiesce",
	OpPowerOff: "poweroff", OpPing: "ping", OpExec: "exec", OpReadFile: "read_file",
	OpWriteFile: "write_file", OpSyscall: "syscall", OpBackground: "background",
	OpJobWait: "job_wait", OpJobKill: "job_kill", OpSpawn: "spawn", OpClose: "close",
	OpDmesg: "dmesg", OpMountVFS: "mount_vfs", OpAnnounce: "announce",
	OpPtyOpen: "pty_open", OpPtyRead: "pty_read", OpPtyWrite: "pty_write",
	OpPtyResize: "pty_resize", OpPtyClose: "pty_close", OpSetClock: "set_clock",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", uint16(o))
}

// Hello opens a session. The host sends a fresh Epoch in the frame header and
// repeats it here.
type Hello struct {
	Version int    `json:"version"`
	Epoch   uint32 `json:"epoch"`
}

// HelloReply tells the host who answered.
type HelloReply struct {
	Version int    `json:"version"`
	PID     int    `json:"pid"`
	Kernel  string `json:"kernel"` // uname -r
	Boots   int    `json:"boots"`  // sessions this agent has served, including this one
}

// Announce is what an agent says when it starts serving a stream. An agent
// started again after the previous one died says how that one ended, so
// that a host still waiting for the dead agent's answers learns why they
// will not come.
type Announce struct {
	PID       int    `json:"pid"`
	Restarted string `json:"restarted,omitempty"` // "was killed by signal 9", "had exited with status 1"; "" on a first start
}

// Error is the meta of an OpError reply. Errno is the guest errno when the
// failure came from a system call (0 otherwise); ErrnoName is its symbol,
// e.g. "ENOENT".
type Error struct {
	Message   string `json:"message"`
	Errno     int    `json:"errno,omitempty"`
	ErrnoName string `json:"errno_name,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Exec runs Cmd with /bin/sh -c on the identity's thread. Blob 0 of the
// request is standard input.
type Exec struct {
	Cmd       string   `json:"cmd"`
	Env       []string `json:"env,omitempty"` // KEY=VALUE added to the agent's environment
	Cwd       string   `json:"cwd,omitempty"`
	TimeoutMs int64    `json:"timeout_ms,omitempty"` // 0: none; on expiry the process group is killed
}

// ExecResult is the reply to Exec. Signal is the number of the signal that
// ended the command, 0 if it exited. ExitCode is 128+Signal in that case.
type ExecResult struct {
	ExitCode int  `json:"exit_code"`
	Signal   int  `json:"signal,omitempty"`
	TimedOut bool `json:"timed_out,omitempty"`
}

// Path names a guest file.
type Path struct {
	Path string `json:"path"`
}

// WriteFile replaces Path with blob 0, creating it with Mode.
type WriteFile struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
}

// MaxArgs is the number of system call arguments.
const MaxArgs = 6

// Syscall is a raw system call. Bufs[i] (blob i) is copied into guest
// memory and its address replaces argument Bufs[i].Arg. Ptrs allocate more
// guest memory whose addresses are written inside a buffer at an offset;
// a Ptr with Data takes its contents from blob len(Bufs)+k, where k counts
// the Ptrs with Data before it.
type Syscall struct {
	Nr   int64           `json:"nr"`
	Args [MaxArgs]uint64 `json:"args"`
	Bufs []Buf           `json:"bufs,omitempty"`
	Ptrs []Ptr           `json:"ptrs,omitempty"`
}

// Buf is a buffer passed by pointer as argument Arg (0-based).
type Buf struct {
	Arg int `json:"arg"`
}

// Ptr is memory of Len bytes whose address is written as 8 little-endian
// bytes into buffer Buf (an index into Syscall.Bufs) at Offset.
type Ptr struct {
	Buf     int  `json:"buf"`
	Offset  int  `json:"offset"`
	Len     int  `json:"len"`
	HasData bool `json:"has_data,omitempty"`
	Output  bool `json:"output,omitempty"`
}

// SyscallResult is the raw return value; failure is -errno. The reply's blobs
// are every buffer after the call, in Bufs order, then every Output Ptr in
// Ptrs order.
type SyscallResult struct {
	Ret int64 `json:"ret"`
}

// Job identifies a background command of one identity.
type Job struct {
	ID  int `json:"id"`
	PID int `json:"pid"`
}

// JobWait waits up to TimeoutMs (0 polls) for job ID.
type JobWait struct {
	ID        int   `json:"id"`
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
}

// JobStatus describes a job; ExitCode is -1 while it runs. The reply's blobs
// are the output captured so far.
type JobStatus struct {
	ExitCode int  `json:"exit_code"`
	Signal   int  `json:"signal,omitempty"`
	Running  bool `json:"running"`
}

// Spawn starts a worker that answers on Channel. Thread selects a thread
// in the agent process instead of a new process.
type Spawn struct {
	Channel uint32 `json:"channel"`
	Thread  bool   `json:"thread,omitempty"`
}

// SpawnReply identifies the worker in the guest.
type SpawnReply struct {
	PID int `json:"pid"`
	TID int `json:"tid"`
}

// MaxPtyRead bounds the output one PtyRead returns, so that a terminal's
// replies stay small and a busy guest cannot starve the stream.
const MaxPtyRead = 64 << 10

// PtyOpen starts Argv (the shell, /bin/sh -l, when empty) on a new
// terminal in the guest, as its session leader with the terminal as its
// controlling one, sized Rows x Cols. Env is added to the agent's
// environment.
type PtyOpen struct {
	Argv []string `json:"argv,omitempty"`
	Env  []string `json:"env,omitempty"`
	Rows uint16   `json:"rows"`
	Cols uint16   `json:"cols"`
}

// PtyOpened identifies a terminal: the ID the control channel names it by
// and the PID of its session leader.
type PtyOpened struct {
	ID  int `json:"id"`
	PID int `json:"pid"`
}

// PtyID names a terminal.
type PtyID struct {
	ID int `json:"id"`
}

// PtyRead waits up to TimeoutMs for output of terminal ID, or for its
// shell to end.
type PtyRead struct {
	ID        int   `json:"id"`
	TimeoutMs int64 `json:"timeout_ms"`
}

// PtyOutput is the reply to PtyRead: blob 0 holds at most MaxPtyRead bytes
// of output. Exited is set once the shell ended and every byte it wrote
// was read; ExitCode and Signal then say how, as in ExecResult.
type PtyOutput struct {
	Exited   bool `json:"exited,omitempty"`
	ExitCode int  `json:"exit_code,omitempty"`
	Signal   int  `json:"signal,omitempty"`
}

// PtyResize gives terminal ID a new size; the shell gets SIGWINCH.
type PtyResize struct {
	ID   int    `json:"id"`
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// SetClock sets the guest's wall clock (CLOCK_REALTIME) to the host's, as
// nanoseconds since the Unix epoch. A resumed guest's clock stands where
// the snapshot left it, however long ago that was.
type SetClock struct {
	UnixNano int64 `json:"unix_nano"`
}
