package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const greeting = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}` + "\r\n"

// socketpair returns both ends of a connected unix stream socket pair.
func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "qmp")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

type request struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        string          `json:"id"`
	fds       []int
}

// fakeQEMU is the server end: it sends the greeting and hands each request
// to handle, which writes whatever it likes back.
type fakeQEMU struct {
	t    *testing.T
	conn *net.UnixConn
	wmu  sync.Mutex
}

func (f *fakeQEMU) send(format string, a ...any) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	fmt.Fprintf(f.conn, format+"\r\n", a...)
}

func (f *fakeQEMU) serve(handle func(f *fakeQEMU, r request)) {
	f.send("%s", strings.TrimSpace(greeting))
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var pending []byte
	var fds []int
	for {
		n, oobn, _, _, err := f.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				got, _ := unix.ParseUnixRights(&m)
				fds = append(fds, got...)
			}
		}
		pending = append(pending, buf[:n]...)
		for {
			i := strings.IndexByte(string(pending), '\n')
			if i < 0 {
				break
			}
			var r request
			if err := json.Unmarshal(pending[:i], &r); err != nil {
				f.t.Errorf("fake QEMU: bad request %q", pending[:i])
				return
			}
			pending = pending[i+1:]
			r.fds, fds = fds, nil
			handle(f, r)
		}
	}
}

func startFake(t *testing.T, handle func(f *fakeQEMU, r request)) *Client {
	t.Helper()
	client, server := socketpair(t)
	f := &fakeQEMU{t: t, conn: server}
	go f.serve(func(f *fakeQEMU, r request) {
		if r.Execute == "qmp_capabilities" {
			f.send(`{"return": {}, "id": %q}`, r.ID)
			return
		}
		handle(f, r)
	})
	t.Cleanup(func() { server.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Connect(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExecute(t *testing.T) {
	c := startFake(t, func(f *fakeQEMU, r request) {
		switch r.Execute {
		case "query-status":
			// An event before the reply must not be taken for it.
			f.send(`{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "STOP"}`)
			f.send(`{"return": {"status": "paused", "running": false}, "id": %q}`, r.ID)
		case "echo":
			f.send(`{"return": %s, "id": %q}`, r.Arguments, r.ID)
		default:
			f.send(`{"error": {"class": "CommandNotFound", "desc": "The command %s has not been found"}, "id": %q}`, r.Execute, r.ID)
		}
	})
	if c.Version.String() != "7.2.22Debian 1:7.2+dfsg-7" || c.Version.Major != 7 {
		t.Errorf("Version = %+v", c.Version)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cmd  string
		args any
		want string
		err  string
	}{
		{"reply after event", "query-status", nil, `{"status": "paused", "running": false}`, ""},
		{"arguments", "echo", map[string]any{"a": 1}, `{"a":1}`, ""},
		{"error reply", "nope", nil, "", "qmp nope: The command nope has not been found (CommandNotFound)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ret, err := c.Execute(ctx, tc.cmd, tc.args)
			if tc.err != "" {
				var qe *Error
				if !errors.As(err, &qe) || err.Error() != tc.err {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(ret) != tc.want {
				t.Errorf("return %s, want %s", ret, tc.want)
			}
		})
	}
}

func TestConcurrentReplies(t *testing.T) {
	// Replies arrive in reverse order of the requests; ids match them up.
	var mu sync.Mutex
	var held []request
	c := startFake(t, func(f *fakeQEMU, r request) {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, r)
		if len(held) == 10 {
			for i := len(held) - 1; i >= 0; i-- {
				f.send(`{"return": %s, "id": %q}`, held[i].Arguments, held[i].ID)
			}
		}
	})
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ret, err := c.Execute(context.Background(), "echo", map[string]int{"n": i})
			if want := fmt.Sprintf(`{"n":%d}`, i); err != nil || string(ret) != want {
				t.Errorf("echo %d: %s, %v", i, ret, err)
			}
		}()
	}
	wg.Wait()
}

func TestExecuteWithFile(t *testing.T) {
	got := make(chan string, 1)
	c := startFake(t, func(f *fakeQEMU, r request) {
		if len(r.fds) != 1 {
			f.send(`{"error": {"class": "GenericError", "desc": "No file descriptor supplied via SCM_RIGHTS"}, "id": %q}`, r.ID)
			return
		}
		file := os.NewFile(uintptr(r.fds[0]), "passed")
		b := make([]byte, 5)
		n, _ := file.ReadAt(b, 0)
		file.Close()
		got <- string(b[:n])
		f.send(`{"return": {}, "id": %q}`, r.ID)
	})
	path := t.TempDir() + "/f"
	os.WriteFile(path, []byte("hello"), 0o644)
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := c.ExecuteWithFile(context.Background(), "getfd", map[string]string{"fdname": "x"}, file); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "hello" {
		t.Errorf("server read %q through the passed descriptor", s)
	}
	if _, err := c.Execute(context.Background(), "getfd", map[string]string{"fdname": "x"}); err == nil {
		t.Error("a command without a file carried one")
	}
}

func TestEvents(t *testing.T) {
	c := startFake(t, func(f *fakeQEMU, r request) {
		f.send(`{"return": {}, "id": %q}`, r.ID)
		f.send(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "MIGRATION", "data": {"status": "completed"}}`)
	})
	events, cancel := c.Subscribe()
	if _, err := c.Execute(context.Background(), "migrate", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev.Name != "MIGRATION" || string(ev.Data) != `{"status": "completed"}` || !ev.Time.Equal(time.Unix(1, 2000)) {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	cancel()
	if _, ok := <-events; ok {
		t.Error("channel open after cancel")
	}
	cancel() // idempotent
}

func TestConnectionLost(t *testing.T) {
	c := startFake(t, func(f *fakeQEMU, r request) { f.conn.Close() })
	events, _ := c.Subscribe()
	_, err := c.Execute(context.Background(), "quit", nil)
	if !errors.Is(err, ErrClosed) {
		t.Errorf("error %v, want ErrClosed", err)
	}
	<-c.Done()
	if _, ok := <-events; ok {
		t.Error("event channel open after the connection ended")
	}
	if _, err := c.Execute(context.Background(), "query-status", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v, want ErrClosed", err)
	}
	if late, _ := c.Subscribe(); !closed(late) {
		t.Error("Subscribe after the end returned an open channel")
	}
}

func closed(ch <-chan Event) bool {
	_, ok := <-ch
	return !ok
}

func TestExecuteContext(t *testing.T) {
	c := startFake(t, func(f *fakeQEMU, r request) {}) // never replies
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Execute(ctx, "query-status", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want DeadlineExceeded", err)
	}
}

func TestConnectErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server func(*net.UnixConn)
		want   string
	}{
		{"not QMP", func(c *net.UnixConn) { c.Write([]byte("hello\n")) }, "not a QMP greeting"},
		{"silent", func(c *net.UnixConn) {}, "deadline"},
		{"closed", func(c *net.UnixConn) { c.Close() }, "greeting"},
		{"capabilities refused", func(c *net.UnixConn) {
			c.Write([]byte(greeting))
			r := bufio.NewReader(c)
			line, _ := r.ReadBytes('\n')
			var req request
			json.Unmarshal(line, &req)
			fmt.Fprintf(c, `{"error": {"class": "GenericError", "desc": "no"}, "id": %q}`+"\n", req.ID)
		}, "qmp_capabilities"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := socketpair(t)
			defer server.Close()
			go tc.server(server)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := Connect(ctx, client)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
