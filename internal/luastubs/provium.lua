---@meta provium
-- Type definitions of Provium's Lua API for lua-language-server (LuaLS).
-- Written by `provium stubs`; run it again after upgrading provium.
-- This file is never run: it only describes what a test script has.

---Runs fn at once as a named sub-test; an error inside fails that sub-test only and the file goes on.
---@param name string the sub-test's name; a test inside a test is "outer/inner"
---@param fn fun() the sub-test's body
function test(name, fn) end

---Marks the current sub-test todo (a skip, not a failure); at file scope, skips the rest of the file.
---@param reason? string why, shown in the report
function todo(reason) end

---Fails unless expected equals actual, showing both (strings quoted, binary escaped, long values trimmed).
---@param expected any the value wanted; tables compare by content
---@param actual any the value got; a command's output compares as its text
---@param msg? string said before the values when the assertion fails
function assert_eq(expected, actual, msg) end

---Fails unless haystack contains needle (plain text, not a pattern).
---@param haystack string|provium.Text|number the text to search, such as r.stdout
---@param needle string|provium.Text|number the text it must contain
---@param msg? string said before the values when the assertion fails
function assert_contains(haystack, needle, msg) end

---Expects a kernel report whose title or text contains pattern in the current sub-test; fails it if none comes.
---@param pattern string plain text, as vm:dmesg matches
function expect_kernel(pattern) end

---Calls fn until it returns a truthy value, which it returns; raises "timed out waiting for <desc>" at the deadline.
---@generic T
---@param fn fun(): T? the condition; errors inside it propagate
---@param opts? provium.WaitOptions timeout, interval and description
---@return T value what fn returned
function wait_until(fn, opts) end

---The provium module: VMs, fixtures, binary packing and names for the guest's numbers.
---@class provium
provium = {}

---A VM of the named profile, not booted yet; an unknown profile is an error listing the known ones.
---@param profile string a profile of provium.toml, or a built-in one ("default", "minimal")
---@return provium.VM vm the VM, in state "created"
function provium.create(profile) end

---Resumes fixture name (fixtures/<name>.lua), built on first use and cached: its VM, or its VMs by hostname when it has several on networks.
---@param name string the fixture's name: its script is fixtures/<name>.lua
---@return provium.VM|table<string, provium.VM> vm a running VM independent of every other resume, or a cluster's VMs by hostname
---@return table<string, provium.Network> networks the fixture's networks by name, made again with the same addresses
function provium.fixture(name) end

---A new network of this file: the N-th one is 10.N.0.0/24, and the x-th VM to join it 10.N.0.x.
---@param name string the network's name, as fixtures give it back
---@return provium.Network net a network for vm:boot({networks = {net}})
function provium.network(name) end

---Shuts down every VM this file created.
function provium.shutdown_all() end

---Packs values little-endian by fmt, a space-separated list of u8 i8 u16 i16 u32 i32 u64 i64.
---@param fmt string the layout, e.g. "u32 u32 u64"
---@param ... integer|string one value per specifier; 64-bit values beyond 2^53 as strings ("0xffffffffffffffff")
---@return string data the packed bytes
function provium.pack(fmt, ...) end

---Unpacks little-endian data by fmt; data too short is an error naming both lengths.
---@param fmt string the layout, as provium.pack takes it
---@param data string|provium.Text the bytes to read
---@return integer|string ... one value per specifier; 64-bit values beyond 2^53 come as decimal strings
function provium.unpack(fmt, data) end

---For the rest of the file, kernel reports whose title or text contains pattern are noise, not failures.
---@param pattern string plain text to match
function provium.kernel_ignore(pattern) end

---The errno name of n or -n ("ENOENT" for 2 and -2), or nil for a number that names none.
---@param n integer an errno or a negative system call result
---@return string? name the errno's name
function provium.strerror(n) end

---Encoders of ioctl numbers, as the kernel's _IO, _IOR, _IOW and _IOWR macros make them.
---@class provium.ioc
provium.ioc = {}

---The ioctl number _IO(type, nr): no argument data.
---@param type integer|string the ioctl's type, a number or one character ('R')
---@param nr integer the command's number within the type
---@return integer cmd the ioctl command
function provium.ioc.IO(type, nr) end

---The ioctl number _IOR(type, nr, size): the kernel writes size bytes to the argument.
---@param type integer|string the ioctl's type, a number or one character ('R')
---@param nr integer the command's number within the type
---@param size integer the size of the argument struct in bytes
---@return integer cmd the ioctl command
function provium.ioc.IOR(type, nr, size) end

---The ioctl number _IOW(type, nr, size): the kernel reads size bytes from the argument.
---@param type integer|string the ioctl's type, a number or one character ('R')
---@param nr integer the command's number within the type
---@param size integer the size of the argument struct in bytes
---@return integer cmd the ioctl command
function provium.ioc.IOW(type, nr, size) end

---The ioctl number _IOWR(type, nr, size): the kernel reads and writes the argument.
---@param type integer|string the ioctl's type, a number or one character ('R')
---@param nr integer the command's number within the type
---@param size integer the size of the argument struct in bytes
---@return integer cmd the ioctl command
function provium.ioc.IOWR(type, nr, size) end

---Options of wait_until and vm:wait_until.
---@class provium.WaitOptions
---@field timeout? number seconds before giving up (10)
---@field interval? number seconds between calls (0.5)
---@field desc? string what is awaited, for the timeout's message ("condition")

---Options of vm:boot.
---@class provium.BootOptions
---@field memory? string|integer guest memory: "512M", "1G" or a number of MiB ("512M")
---@field cpus? integer virtual CPUs (1)
---@field files? table<string, string> {["/guest/path"] = "host/path"}, present at boot
---@field disks? provium.Disk[] disk images, appearing as /dev/vda, /dev/vdb, ...
---@field boot_timeout? number seconds to wait for the agent
---@field networks? provium.Network[] networks to join, one network card each, in this order
---@field hostname? string the guest's hostname, and its name in the networks' /etc/hosts

---A disk image attached at boot; also {path, format, readonly} by position.
---@class provium.Disk
---@field path string the image on the host, relative to where provium started
---@field format? "raw"|"qcow2" the image's format ("raw")
---@field readonly? boolean attach read-only (false); a fixture's disks must be

---Options of exec and json.
---@class provium.ExecOptions
---@field timeout? number seconds before the command is killed (r.timed_out then)
---@field stdin? string|provium.Text the command's standard input
---@field env? table<string, string>|string[] extra environment: {K = "v"} or {"K=v"}
---@field cwd? string the command's working directory

---Options of background.
---@class provium.BackgroundOptions
---@field env? table<string, string>|string[] extra environment: {K = "v"} or {"K=v"}
---@field cwd? string the command's working directory

---Options of vm:spawn.
---@class provium.SpawnOptions
---@field thread? boolean a thread in the VM's agent process rather than a process of its own (false)

---What exec returns.
---@class provium.ExecResult
---@field ok boolean exit code 0, no signal, no timeout
---@field exit_code integer the command's exit code
---@field stdout provium.Text what it wrote to standard output
---@field stderr provium.Text what it wrote to standard error
---@field signal? integer the signal that ended it, if one did
---@field timed_out boolean killed at its timeout

---A background job, as background returns it.
---@class provium.Job
---@field id integer the job's id, for job_wait and job_kill
---@field pid integer the guest process id of its shell

---A job's state, as job_wait and job_kill return it.
---@class provium.JobResult
---@field exit_code integer the exit code; -1 while running
---@field running boolean still running
---@field signal? integer the signal that ended it, if one did
---@field stdout provium.Text its standard output so far
---@field stderr provium.Text its standard error so far

---A kernel report (oops, BUG, WARNING, KASAN, ...) a VM printed.
---@class provium.KernelReport
---@field kind string the kind of report, e.g. "bug", "warning"
---@field title string its one-line title
---@field text string its full text
---@field time number when it appeared, seconds since the epoch

---An embedded pointer of vm:syscall_ptr; also {buf_idx, ptr_offset, data_len, data, output} by position.
---@class provium.PtrSpec
---@field buf_idx integer the argument index of the buffer (in bufs) that holds the pointer
---@field ptr_offset integer where in that buffer the 8-byte address goes
---@field data_len? integer bytes of guest memory it points to (default: #data)
---@field data? string what that memory holds at first (zeros if absent)
---@field output? boolean return that memory after the call

---An embedded pointer of vm:ioctl_buf; also {ptr_offset, buf_len, data, output} by position.
---@class provium.IoctlPtrSpec
---@field ptr_offset integer where in the struct the 8-byte address goes
---@field buf_len? integer bytes of guest memory it points to (default: #data)
---@field data? string what that memory holds at first (zeros if absent)
---@field output? boolean return that memory after the call

---A command's stdout or stderr: tostring, #, .. and the string methods see its text; .value is the raw string.
---@class provium.Text: string
---@field value string the raw bytes
local Text = {}

---Whether the text contains s (plain text); works as t.contains(s) too.
---@param s string the text to look for
---@return boolean found
function Text:contains(s) end

---Whether the text starts with s; works as t.starts_with(s) too.
---@param s string the prefix
---@return boolean found
function Text:starts_with(s) end

---Whether the text ends with s; works as t.ends_with(s) too.
---@param s string the suffix
---@return boolean found
function Text:ends_with(s) end

---The text without leading and trailing white space.
---@return string text
function Text:trim() end

---The text's lines, without their newlines.
---@return string[] lines
function Text:lines() end

---What a VM and a worker both do: commands, files, system calls, ioctls and jobs, as their identity in the guest.
---@class provium.Agent
local Agent = {}

---Runs cmd with /bin/sh -c and returns its result; a failing command is a result, not an error.
---@param cmd string the shell command
---@param opts? provium.ExecOptions timeout, stdin, env, cwd
---@return provium.ExecResult r ok, exit_code, stdout, stderr, signal, timed_out
function Agent:exec(cmd, opts) end

---Runs cmd and parses its stdout as JSON; a non-zero exit or bad JSON is an error.
---@param cmd string the shell command
---@param opts? provium.ExecOptions timeout, stdin, env, cwd
---@return any value the decoded JSON: objects and arrays as tables, null as nil
function Agent:json(cmd, opts) end

---The contents of a guest file; an error names the path and the errno.
---@param path string the guest path
---@return string data the file's bytes
function Agent:read_file(path) end

---Writes data to a guest file, creating or truncating it; an error names the path and the errno.
---@param path string the guest path
---@param data string|provium.Text the bytes to write
---@param mode? integer the file's mode when created (0644, written 420)
function Agent:write_file(path, data, mode) end

---The kernel log, or only its lines that contain pattern (plain text).
---@param pattern? string the text a line must contain
---@return string log the lines, each ending in a newline
function Agent:dmesg(pattern) end

---Mounts proc, sysfs, securityfs and devtmpfs at their usual places; already mounted is fine.
function Agent:mount_vfs() end

---Calls fn until it returns a truthy value, which it returns; wait_until with a receiver.
---@generic T
---@param fn fun(): T? the condition; errors inside it propagate
---@param opts? provium.WaitOptions timeout, interval and description
---@return T value what fn returned
function Agent:wait_until(fn, opts) end

---Starts cmd with /bin/sh -c in the background.
---@param cmd string the shell command
---@param opts? provium.BackgroundOptions env, cwd
---@return provium.Job job its id and pid, for job_wait and job_kill
function Agent:background(cmd, opts) end

---Waits up to timeout seconds for a job to end; no timeout (or 0) polls.
---@param job provium.Job|integer the job, or its id
---@param timeout? number seconds to wait (0)
---@return provium.JobResult r exit_code (-1 while running), running, signal, stdout, stderr
function Agent:job_wait(job, timeout) end

---Kills a job and returns its final state.
---@param job provium.Job|integer the job, or its id
---@return provium.JobResult r its state after the kill
function Agent:job_kill(job) end

---A raw system call: the result, or -errno on failure.
---@param nr integer|string the number, or the name ("openat"), of the guest's architecture
---@param ... integer|string up to six arguments; beyond 2^53 as strings; nil counts as 0
---@return integer ret the raw result
function Agent:syscall(nr, ...) end

---A system call whose argument idx (0-based) points to a guest copy of data.
---@param nr integer|string the number or name of the call
---@param idx integer the 0-based index, among the arguments, of the buffer
---@param data string|provium.Text the buffer's bytes (N zero bytes for an output buffer)
---@param ... integer|string the other arguments; missing ones count as 0
---@return integer ret the raw result
---@return string out the buffer after the call
function Agent:syscall_buf(nr, idx, data, ...) end

---A system call with several buffers, bufs mapping 0-based argument indices to their data.
---@param nr integer|string the number or name of the call
---@param bufs table<integer, string> argument index to the buffer's bytes
---@param ... integer|string the other arguments; missing ones count as 0
---@return integer ret the raw result
---@return string ... the buffers after the call, in index order
function Agent:syscall_bufs(nr, bufs, ...) end

---A system call with buffers and pointers embedded in them.
---@param nr integer|string the number or name of the call
---@param bufs table<integer, string> argument index to the buffer's bytes
---@param ptrs provium.PtrSpec[] the pointers to patch into the buffers
---@param ... integer|string the other arguments; missing ones count as 0
---@return integer ret the raw result
---@return string ... the buffers in index order, then every output=true pointer's memory in spec order
function Agent:syscall_ptr(nr, bufs, ptrs, ...) end

---An ioctl; direction and size come from cmd, and for _IOR without data a zeroed buffer of that size is passed.
---@param fd integer the file descriptor
---@param cmd integer the ioctl command (see provium.ioc)
---@param data? string|integer the argument: bytes passed by pointer, or a number passed as it is
---@return integer ret the raw result, -errno on failure
---@return string? out the struct after the call, for _IOR and _IOWR
function Agent:ioctl(fd, cmd, data) end

---An ioctl whose struct has pointers patched into it.
---@param fd integer the file descriptor
---@param cmd integer the ioctl command (see provium.ioc)
---@param struct string|provium.Text the struct's bytes
---@param specs provium.IoctlPtrSpec[] the pointers to patch into the struct
---@return integer ret the raw result, -errno on failure
---@return string struct_out the struct after the call
---@return string ... every output=true pointer's memory, in spec order
function Agent:ioctl_buf(fd, cmd, struct, specs) end

---A virtual machine of a test file, from provium.create or provium.fixture.
---@class provium.VM: provium.Agent
---@field name string the VM's name in messages, e.g. "minimal#1"
---@field state "created"|"running"|"shut down"|"killed"|"dead" where it is in its life
---@field hostname? string the hostname its boot set: the boot option, else, on a network, one provium chose; nil before
local VM = {}

---Starts QEMU and waits for the agent; an error after 30 s without one carries the console's tail.
---@param opts? provium.BootOptions memory, cpus, files, disks, boot_timeout
---@return provium.VM vm the VM itself, running
function VM:boot(opts) end

---Powers the VM off gracefully (10 s, then kill) and gives back its resources; idempotent.
function VM:shutdown() end

---Kills QEMU at once.
function VM:kill() end

---A worker: another agent identity in this guest, a process of its own or, with thread = true, a thread.
---@param opts? provium.SpawnOptions thread
---@return provium.Worker worker its own credentials and channel to the host
function VM:spawn(opts) end

---The VM's address on net ("10.N.0.x"), or on its only network when net is left out.
---@param net? provium.Network one of the networks the VM booted on
---@return string ip the address, without the prefix length
function VM:ip(net) end

---Every kernel report the VM printed so far, oldest first.
---@return provium.KernelReport[] reports kind, title, text, time
function VM:kernel_reports() end

---Another agent identity in a VM's guest, from vm:spawn: it has every method of a VM but boot, shutdown and spawn.
---@class provium.Worker: provium.Agent
---@field name string the worker's name in messages, e.g. "minimal#1/worker1"
---@field pid integer its guest process id (the thread-group id of a thread worker)
---@field tid integer its guest thread id
---@field thread boolean whether it is a thread of its VM's agent
local Worker = {}

---Closes the worker's channel and the worker exits; calls on it afterwards are errors.
function Worker:kill() end

---A network of VMs inside provium, from provium.network: 10.N.0.0/24, nothing reaching the host's own networks.
---@class provium.Network
---@field name string the name the test gave it
---@field prefix string its addresses, e.g. "10.1.0.0/24"
local Network = {}

---Splits the network: VMs in different groups cannot reach each other, and a VM in no group reaches no one.
---@param ... provium.VM[] the groups, e.g. {a, b}, {c}
function Network:partition(...) end

---Ends a partition: every VM reaches every other again.
function Network:heal() end

---The link between two VMs of the network, to impair both its directions.
---@param a provium.VM a VM on the network
---@param b provium.VM another VM on it
---@return provium.Link link the link between them
function Network:link(a, b) end

---Writes what the network carries from now on to a pcap file, complete when the test file ends.
---@param path string the file, relative to where provium started
function Network:capture(path) end

---The link between two VMs of a network, from net:link(a, b).
---@class provium.Link
local Link = {}

---Impairs the link in both directions from now on; link:set{} lifts it.
---@param opts provium.LinkOptions delay, jitter, loss, rate
function Link:set(opts) end

---How net:link(a, b):set impairs a link.
---@class provium.LinkOptions
---@field delay? string|number added latency: "50ms", "1.5s" or seconds
---@field jitter? string|number random variation of the delay, likewise
---@field loss? number the probability that a frame is dropped, from 0 to 1
---@field rate? string|integer the bandwidth: "10mbit", "512kbit", "1gbit" or bits per second
