package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/provium/provium/internal/wire"
	"github.com/provium/provium/internal/wire/boot"
)

const (
	envWorkerFD      = "PROVIUM_WORKER_FD"
	envWorkerChannel = "PROVIUM_WORKER_CHANNEL"
	// envWorkerCreds carries the parent thread's credentials to a worker
	// started for a spawn (see restoreCreds).
	envWorkerCreds = "PROVIUM_WORKER_CREDS"
	// spareChannel in PROVIUM_WORKER_CHANNEL starts a spare.
	spareChannel = "spare"
)

// WorkerMain is the worker process: it serves one identity, on its own
// locked thread, over the socket its parent agent passed in
// PROVIUM_WORKER_FD, answering on the channel in PROVIUM_WORKER_CHANNEL. It
// exits when the socket closes, killing its jobs first. With the channel
// "spare" it first waits for a claim, which names the channel and carries
// what the worker inherits from its parent (see runSpare).
func WorkerMain() {
	fd, ch, err := workerEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", boot.WorkerName, err)
		os.Exit(2)
	}
	// The commands this worker runs must not inherit the socket.
	unix.CloseOnExec(fd)
	if ch == 0 {
		os.Exit(runSpare(fd))
	}
	restoreCreds()
	os.Exit(runWorker(func() (io.ReadWriter, uint32, error) {
		return os.NewFile(uintptr(fd), "provium-worker-socket"), ch, nil
	}))
}

// restoreCreds gives the process the credentials of the thread it was
// started from, as a fork would have kept them. The exec that started it
// changed some: the saved ids became the effective ones, and capabilities
// were recomputed. Where the kernel does not allow the way back, the
// worker keeps what the exec left and says so on the console.
func restoreCreds() {
	text := os.Getenv(envWorkerCreds)
	os.Unsetenv(envWorkerCreds)
	if text == "" {
		return
	}
	var c claim
	err := json.Unmarshal([]byte(text), &c)
	if err == nil {
		err = c.creds().applyAll()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: keeping the credentials exec gave it: %v\n", boot.WorkerName, err)
	}
}

// workerEnv reads the socket and the channel, 0 for a spare.
func workerEnv() (fd int, ch uint32, err error) {
	fdText, chText := os.Getenv(envWorkerFD), os.Getenv(envWorkerChannel)
	// Not for the commands this worker runs.
	os.Unsetenv(envWorkerFD)
	os.Unsetenv(envWorkerChannel)
	fd, err = strconv.Atoi(fdText)
	if err != nil || fd < 0 {
		return 0, 0, fmt.Errorf("%s=%q is not a descriptor", envWorkerFD, fdText)
	}
	if chText == spareChannel {
		return fd, 0, nil
	}
	c, err := strconv.ParseUint(chText, 10, 32)
	if err != nil || uint32(c) <= wire.MainChannel {
		return 0, 0, fmt.Errorf("%s=%q is not a worker channel", envWorkerChannel, chText)
	}
	return fd, uint32(c), nil
}

// runWorker serves one identity until its socket fails, and returns the
// exit status for the process. open runs first, on the identity's thread,
// and returns the socket and the channel to serve; if it fails, the worker
// sends the error instead of its ready signal (io.EOF: it just exits).
func runWorker(open func() (io.ReadWriter, uint32, error)) int {
	h := &workerProcess{}
	id := newIdentity(0, h)
	var ch uint32
	tid, err := id.start(func() error {
		rw, c, err := open()
		if rw != nil {
			h.conn = wire.NewConn(rw, 0)
		}
		id.ch, ch = c, c
		return err
	})
	conn := h.conn
	if errors.Is(err, io.EOF) {
		return 0
	}
	if err != nil {
		if conn != nil {
			send(conn, ch, errorReply(0, err))
		}
		return 1
	}
	ready, err := wire.Reply(0, wire.SpawnReply{PID: os.Getpid(), TID: tid})
	if err != nil {
		return 1
	}
	if err := conn.Send(ch, ready); err != nil {
		return 1
	}
	received := make(chan struct{})
	go func() {
		defer close(received)
		for {
			env, err := conn.Receive()
			if err != nil {
				return
			}
			r := request{msg: env.Msg}
			if err := id.deliver(r); err != nil {
				h.reply(0, ch, errorReply(r.msg.ID, err))
			}
		}
	}()
	select {
	case <-received: // the agent closed the socket, or broke it
	case <-id.done: // the identity ended itself
	}
	id.kill()
	// After exit(2), the status the worker asked for; else 0.
	return id.exitStatus()
}

// workerProcess is what an identity sees of a worker process.
type workerProcess struct {
	conn *wire.Conn
}

func (h *workerProcess) reply(_ uint64, ch uint32, m *wire.Message) {
	// An error means the agent is gone; the receive loop ends too.
	send(h.conn, ch, m)
}

func (h *workerProcess) live(uint64) bool { return true }

func (h *workerProcess) spawn(*identity, uint64, wire.Spawn) (wire.SpawnReply, error) {
	return wire.SpawnReply{}, errors.New("spawn: a worker process cannot spawn workers")
}
