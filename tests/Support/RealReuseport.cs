using System.Buffers.Binary;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using BpfJit.Frontend;

namespace BpfJit.Tests.Support;

/// <summary>
/// The live kernel's SO_REUSEPORT groups as an oracle for SK_REUSEPORT programs: on a dedicated thread that has
/// unshared its network namespace (a fresh one, loopback up), real TCP listeners and UDP sockets join a group,
/// an SK_REUSEPORT program (BPF_PROG_LOAD, type 21) is attached with SO_ATTACH_REUSEPORT_EBPF, and clients send
/// datagrams or connect from chosen source ports; each outcome is the member that received (or refused).
/// Tests skip with the reason where bpf() or unshare(CLONE_NEWNET) is not permitted (<see cref="RequireAvailable"/>).
/// </summary>
public static unsafe class RealReuseport
{
    const long SysBpf = 321;
    const int ProgLoad = 5;
    const uint ProgTypeSkReuseport = 21, AttachSkReuseportSelect = 39;
    const int CloneNewNet = 0x40000000;
    const int AfInet = 2, AfInet6 = 10, SockStream = 1, SockDgram = 2, SockNonblock = 0x800;
    const int SolSocket = 1, SoReuseport = 15, SoAttachReuseportEbpf = 52;
    const short PollIn = 1, PollErr = 8;
    const int Econnrefused = 111;

    [DllImport("libc", SetLastError = true)] static extern long syscall(long number, long cmd, void* attr, long size);
    [DllImport("libc", SetLastError = true)] static extern int unshare(int flags);
    [DllImport("libc", SetLastError = true)] static extern int socket(int domain, int type, int protocol);
    [DllImport("libc", SetLastError = true)] static extern int setsockopt(int fd, int level, int name, void* value, int len);
    [DllImport("libc", SetLastError = true)] static extern int bind(int fd, void* addr, int len);
    [DllImport("libc", SetLastError = true)] static extern int listen(int fd, int backlog);
    [DllImport("libc", SetLastError = true)] static extern int connect(int fd, void* addr, int len);
    [DllImport("libc", SetLastError = true)] static extern nint send(int fd, void* buf, nint len, int flags);
    [DllImport("libc", SetLastError = true)] static extern nint recv(int fd, void* buf, nint len, int flags);
    [DllImport("libc", SetLastError = true)] static extern int accept(int fd, void* addr, void* len);
    [DllImport("libc", SetLastError = true)] static extern int poll(void* fds, nuint count, int timeout);
    [DllImport("libc", SetLastError = true)] static extern int ioctl(int fd, ulong request, void* arg);
    [DllImport("libc", SetLastError = true)] static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] static extern int getpeername(int fd, void* addr, int* len);
    [DllImport("libc", SetLastError = true)] static extern int getsockopt(int fd, int level, int name, void* value, int* len);
    [DllImport("libc", SetLastError = true)] static extern int sched_setaffinity(int pid, nint size, ulong* mask);
    [DllImport("libc", SetLastError = true)] static extern int shutdown(int fd, int how);
    [DllImport("libc", SetLastError = true)] static extern int getsockname(int fd, void* addr, int* len);

    static readonly Lazy<string?> s_unavailable = new(Probe);

    /// <summary>Marks the calling test ignored, with the reason, where the oracle cannot run here.</summary>
    public static void RequireAvailable()
    {
        if (s_unavailable.Value is { } reason) Assert.Ignore("real reuseport oracle unavailable: " + reason);
    }

    static string? Probe()
    {
        if (!KernelBpf.Available) return BpfJit.Baselines.KernelBpf.UnavailableReason;
        try
        {
            return InFreshNamespace(() => (string?)null);
        }
        catch (InvalidOperationException e)
        {
            return e.Message;
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> on a new thread in a fresh network namespace with loopback up; sockets it creates
    /// live in that namespace, which ends with them. Exceptions of the body are rethrown here.
    /// </summary>
    public static T InFreshNamespace<T>(Func<T> body)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                if (unshare(CloneNewNet) != 0) throw new InvalidOperationException($"unshare(CLONE_NEWNET): errno {Marshal.GetLastPInvokeError()}");
                LoopbackUp();
                result = body();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        });
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }

    static void LoopbackUp()
    {
        int fd = socket(AfInet, SockDgram, 0);
        var ifreq = new byte[40];
        "lo"u8.CopyTo(ifreq);
        fixed (byte* r = ifreq)
        {
            const ulong SiocGifFlags = 0x8913, SiocSifFlags = 0x8914;
            int ok = ioctl(fd, SiocGifFlags, r);
            *(short*)(r + 16) |= 1;     // IFF_UP
            if (ok != 0 || ioctl(fd, SiocSifFlags, r) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                close(fd);
                throw new InvalidOperationException($"bringing lo up: errno {errno}");
            }
        }
        close(fd);
    }

    /// <summary>
    /// Turns each <c>lddw</c> of a marker in <paramref name="insns"/> into a BPF_PSEUDO_MAP_FD load of that marker's map
    /// fd (<paramref name="maps"/>: marker → fd), in place; returns <paramref name="insns"/>.
    /// </summary>
    public static Instruction[] BindMaps(Instruction[] insns, params (long Marker, int Fd)[] maps)
    {
        for (int i = 0; i < insns.Length; i++)
        {
            if (!insns[i].IsLdImm64) continue;
            foreach (var (marker, fd) in maps)
                if (insns[i].Imm == marker) insns[i] = insns[i] with { Src = 1, Imm = fd };
            i++;
        }
        return insns;
    }

    /// <summary>
    /// Loads <paramref name="insns"/> (map references as BPF_PSEUDO_MAP_FD) as an SK_REUSEPORT program (or, with
    /// <paramref name="programType"/>, another type): the fd, or throws with the log.
    /// </summary>
    public static int LoadProgram(IReadOnlyList<Instruction> insns, uint expectedAttachType = AttachSkReuseportSelect, uint programType = ProgTypeSkReuseport)
    {
        var code = Encoder.Encode(insns.ToArray());
        var license = "GPL\0"u8.ToArray();
        var log = new byte[1 << 16];
        var attr = new byte[144];
        fixed (byte* c = code, l = license, lg = log, p = attr)
        {
            *(uint*)(p + 0) = programType;
            *(uint*)(p + 4) = (uint)insns.Count;
            *(ulong*)(p + 8) = (ulong)c;
            *(ulong*)(p + 16) = (ulong)l;
            *(uint*)(p + 24) = 1;
            *(uint*)(p + 28) = (uint)log.Length;
            *(ulong*)(p + 32) = (ulong)lg;
            *(uint*)(p + 68) = expectedAttachType;
            long fd = syscall(SysBpf, ProgLoad, p, attr.Length);
            if (fd >= 0) return (int)fd;
            int errno = Marshal.GetLastPInvokeError();
            int len = Array.IndexOf(log, (byte)0);
            throw new InvalidOperationException($"BPF_PROG_LOAD (type {programType}): errno {errno}\n{System.Text.Encoding.UTF8.GetString(log, 0, len < 0 ? log.Length : len)}");
        }
    }

    /// <summary>
    /// Loads <paramref name="insns"/> as an SK_LOOKUP program and links it to the calling thread's network namespace
    /// (BPF_LINK_CREATE, BPF_SK_LOOKUP): the link's fd; the program's fd is closed (the link holds it).
    /// </summary>
    public static int AttachSkLookup(IReadOnlyList<Instruction> insns)
    {
        const uint ProgTypeSkLookup = 30, AttachSkLookupType = 36;
        const int LinkCreate = 28;
        int prog = LoadProgram(insns, AttachSkLookupType, ProgTypeSkLookup);
        int netns = open("/proc/thread-self/ns/net", 0);
        Check(netns, "open /proc/thread-self/ns/net");
        try
        {
            var attr = new byte[64];
            fixed (byte* p = attr)
            {
                *(uint*)(p + 0) = (uint)prog;
                *(uint*)(p + 4) = (uint)netns;
                *(uint*)(p + 8) = AttachSkLookupType;
                long link = syscall(SysBpf, LinkCreate, p, attr.Length);
                if (link < 0) throw new InvalidOperationException($"BPF_LINK_CREATE (BPF_SK_LOOKUP): errno {Marshal.GetLastPInvokeError()}");
                return (int)link;
            }
        }
        finally
        {
            close(netns);
            close(prog);
        }
    }

    // 127.0.0.1:port (struct sockaddr_in) or, v6, [::1]:port (struct sockaddr_in6).
    static byte[] SockAddr(ushort port, bool v6 = false)
    {
        var a = new byte[v6 ? 28 : 16];
        BinaryPrimitives.WriteUInt16LittleEndian(a, (ushort)(v6 ? AfInet6 : AfInet));
        BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(2), port);
        if (v6) a[23] = 1;
        else
        {
            a[4] = 127; a[7] = 1;
        }
        return a;
    }

    static void Check(int r, string what)
    {
        if (r < 0) throw new InvalidOperationException($"{what}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>A socket bound to 127.0.0.1:<paramref name="port"/> (<paramref name="v6"/>: an AF_INET6 one on [::1]) with SO_REUSEPORT (TCP: listening); its fd.</summary>
    public static int Member(bool tcp, ushort port, bool v6 = false)
    {
        int fd = socket(v6 ? AfInet6 : AfInet, tcp ? SockStream : SockDgram, 0);
        Check(fd, "socket");
        int one = 1;
        Check(setsockopt(fd, SolSocket, SoReuseport, &one, 4), "SO_REUSEPORT");
        var a = SockAddr(port, v6);
        fixed (byte* p = a) Check(bind(fd, p, a.Length), $"bind 127.0.0.1:{port}");
        if (tcp) Check(listen(fd, 64), "listen");
        return fd;
    }

    /// <summary>A new TCP or UDP AF_INET socket, with SO_REUSEPORT unless <paramref name="reuseport"/> is false; not bound.</summary>
    public static int NewSocket(bool tcp, bool reuseport = true)
    {
        int fd = socket(AfInet, tcp ? SockStream : SockDgram, 0);
        Check(fd, "socket");
        int one = 1;
        if (reuseport) Check(setsockopt(fd, SolSocket, SoReuseport, &one, 4), "SO_REUSEPORT");
        return fd;
    }

    /// <summary>bind() of <paramref name="fd"/> to 127.0.0.1:<paramref name="port"/>.</summary>
    public static void BindLoopback(int fd, ushort port) => Check(-TryBindLoopback(fd, port), $"bind 127.0.0.1:{port}");

    /// <summary>bind() of <paramref name="fd"/> to 127.0.0.1:<paramref name="port"/>: 0 or the errno.</summary>
    public static int TryBindLoopback(int fd, ushort port)
    {
        var a = SockAddr(port);
        fixed (byte* p = a) return bind(fd, p, a.Length) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>listen() on <paramref name="fd"/>.</summary>
    public static void Listen(int fd) => Check(-TryListen(fd), "listen");

    /// <summary>listen() on <paramref name="fd"/>: 0 or the errno.</summary>
    public static int TryListen(int fd) => listen(fd, 64) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>shutdown() of <paramref name="fd"/> (<paramref name="how"/>: SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2): 0 or the errno.</summary>
    public static int Shutdown(int fd, int how) => shutdown(fd, how) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>The local port of <paramref name="fd"/> (getsockname; an AF_INET socket).</summary>
    public static ushort LocalPort(int fd)
    {
        var addr = new byte[16];
        int len = addr.Length;
        fixed (byte* a = addr) Check(getsockname(fd, a, &len), "getsockname");
        return BinaryPrimitives.ReadUInt16BigEndian(addr.AsSpan(2));
    }

    /// <summary>setsockopt(SOL_SOCKET, <paramref name="option"/>) with an int (for SO_DETACH_REUSEPORT_BPF, 68, the value is ignored); 0 or the errno.</summary>
    public static int SetSocketOption(int fd, int option, int value) =>
        setsockopt(fd, SolSocket, option, &value, 4) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>SO_ATTACH_REUSEPORT_EBPF on <paramref name="member"/>: the program runs for its whole group.</summary>
    public static void Attach(int member, int progFd) => Check(setsockopt(member, SolSocket, SoAttachReuseportEbpf, &progFd, 4), "SO_ATTACH_REUSEPORT_EBPF");

    /// <summary>
    /// SO_ATTACH_REUSEPORT_CBPF on <paramref name="member"/> with the classic program <paramref name="filter"/>
    /// (<c>struct sock_fprog</c>); 0, or the errno the kernel refused it with.
    /// </summary>
    public static int AttachClassic(int member, IReadOnlyList<BpfJit.Runtime.SkReuseport.SockFilter> filter)
    {
        var bytes = new byte[filter.Count * 8];
        for (int i = 0; i < filter.Count; i++) filter[i].Write(bytes.AsSpan(i * 8));
        fixed (byte* f = bytes)
        {
            var fprog = stackalloc long[2];
            fprog[0] = filter.Count;
            fprog[1] = (long)f;
            return setsockopt(member, SolSocket, 51 /* SO_ATTACH_REUSEPORT_CBPF */, fprog, 16) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>connect() of <paramref name="fd"/> to 127.0.0.1:<paramref name="port"/> (a UDP member becomes a connected one).</summary>
    public static void ConnectTo(int fd, ushort port)
    {
        var a = SockAddr(port);
        fixed (byte* p = a) Check(connect(fd, p, a.Length), $"connect 127.0.0.1:{port}");
    }

    /// <summary>getsockopt(SOL_SOCKET, <paramref name="option"/>) of an int.</summary>
    public static int GetSocketOption(int fd, int option)
    {
        int value = 0, len = 4;
        Check(getsockopt(fd, SolSocket, option, &value, &len), $"getsockopt {option}");
        return value;
    }

    /// <summary>
    /// Pins the calling thread to <paramref name="cpu"/> (sched_setaffinity): false where that CPU is not available.
    /// A loopback packet sent from a pinned thread is received (looked up) on that CPU: the backlog it is queued to is
    /// the sending CPU's, whose softirq processes it (no RPS on a fresh namespace's loopback).
    /// </summary>
    public static bool PinToCpu(int cpu)
    {
        if (cpu is < 0 or >= 64) return false;
        ulong mask = 1UL << cpu;
        return sched_setaffinity(0, sizeof(ulong), &mask) == 0;
    }

    /// <summary>The socket's cookie (SO_COOKIE), what <c>bpf_get_socket_cookie</c> returns for it.</summary>
    public static ulong Cookie(int fd)
    {
        ulong cookie = 0;
        int len = 8;
        Check(getsockopt(fd, SolSocket, 57 /* SO_COOKIE */, &cookie, &len), "SO_COOKIE");
        return cookie;
    }

    /// <summary>A connected TCP client from 127.0.0.1:<paramref name="sourcePort"/> to 127.0.0.1:<paramref name="port"/> (the handshake done); its fd.</summary>
    public static int Client(ushort sourcePort, ushort port)
    {
        int client = socket(AfInet, SockStream, 0);
        Check(client, "socket");
        int one = 1;
        setsockopt(client, SolSocket, 2 /* SO_REUSEADDR */, &one, 4);
        var from = SockAddr(sourcePort);
        var to = SockAddr(port);
        fixed (byte* f = from, t = to)
        {
            Check(bind(client, f, from.Length), $"bind client :{sourcePort}");
            Check(connect(client, t, to.Length), $"connect :{port}");
        }
        return client;
    }

    /// <summary>Accepts every connection queued on <paramref name="listener"/> (waiting up to 200 ms for the first); their peers' ports.</summary>
    public static List<ushort> AcceptAll(int listener)
    {
        var peers = new List<ushort>();
        while (true)
        {
            long pfd = (uint)listener | ((long)PollIn << 32);
            int ready = poll(&pfd, 1, peers.Count == 0 ? 200 : 0);
            if (ready <= 0 || ((short)(pfd >> 48) & PollIn) == 0) return peers;
            var addr = new byte[16];
            int len = 16;
            fixed (byte* a = addr)
            {
                int fd = accept(listener, null, null);
                if (fd < 0) return peers;
                Check(getpeername(fd, a, &len), "getpeername");
                close(fd);
            }
            peers.Add(BinaryPrimitives.ReadUInt16BigEndian(addr.AsSpan(2)));
        }
    }

    /// <summary>
    /// Holds back the final ACK of every handshake to 127.0.0.1:<paramref name="port"/>: a generic-mode XDP program on
    /// the namespace's loopback (ifindex 1, BPF_LINK_CREATE with BPF_XDP) drops IPv4 TCP segments to that port whose
    /// flags are ACK alone (a bare ACK; a segment with data carries PSH and passes). The link's fd: closing it detaches.
    /// </summary>
    public static int DropBareAcks(ushort port)
    {
        const uint ProgTypeXdp = 6, AttachXdp = 37;
        const int LinkCreate = 28, LoopbackIfindex = 1;
        // Ethernet (14) + IPv4 without options (20) + the TCP header's first 14 bytes; XDP_DROP 1, XDP_PASS 2.
        int prog = LoadProgram(Assembler.Assemble($"""
            ldxw %r2, [%r1+0]
            ldxw %r3, [%r1+4]
            mov %r0, 2
            mov %r4, %r2
            add %r4, 48
            jgt %r4, %r3, out
            ldxh %r5, [%r2+12]
            jne %r5, 0x0008, out
            ldxb %r5, [%r2+14]
            jne %r5, 0x45, out
            ldxb %r5, [%r2+23]
            jne %r5, 6, out
            ldxh %r5, [%r2+36]
            jne %r5, {BinaryPrimitives.ReverseEndianness(port)}, out
            ldxb %r5, [%r2+47]
            jne %r5, 0x10, out
            mov %r0, 1
            out:
            exit
            """), AttachXdp, ProgTypeXdp);
        try
        {
            var attr = new byte[64];
            fixed (byte* p = attr)
            {
                *(uint*)(p + 0) = (uint)prog;
                *(uint*)(p + 4) = LoopbackIfindex;
                *(uint*)(p + 8) = AttachXdp;
                long link = syscall(SysBpf, LinkCreate, p, attr.Length);
                if (link < 0) throw new InvalidOperationException($"BPF_LINK_CREATE (BPF_XDP on lo): errno {Marshal.GetLastPInvokeError()}");
                return (int)link;
            }
        }
        finally
        {
            close(prog);
        }
    }

    /// <summary>Whether <paramref name="fd"/> becomes readable (a listener: a connection to accept) within <paramref name="timeoutMs"/>.</summary>
    public static bool Readable(int fd, int timeoutMs)
    {
        long pfd = (uint)fd | ((long)PollIn << 32);
        int ready = poll(&pfd, 1, timeoutMs);
        Check(ready, "poll");
        return ready > 0 && ((short)(pfd >> 48) & PollIn) != 0;
    }

    /// <summary>send() of <paramref name="data"/> on the connected <paramref name="fd"/>.</summary>
    public static void Send(int fd, byte[] data)
    {
        fixed (byte* d = data) Check((int)send(fd, d, data.Length, 0), "send");
    }

    /// <summary>
    /// Waits (up to 5 s) for the connection of <paramref name="client"/> to land: the index in <paramref name="listeners"/>
    /// of the listener whose accept queue now holds it (the connection is accepted and closed), or -1 when the client
    /// was reset (the kernel answered with a RST).
    /// </summary>
    public static int AcceptedBy(int[] listeners, int client)
    {
        var fds = new long[listeners.Length + 1];
        for (int i = 0; i < listeners.Length; i++) fds[i] = (uint)listeners[i] | ((long)PollIn << 32);
        fds[^1] = (uint)client | ((long)PollIn << 32);
        fixed (long* p = fds)
        {
            int ready = poll(p, (nuint)fds.Length, 5000);
            Check(ready, "poll");
            if (ready == 0) throw new InvalidOperationException("no listener accepted the connection and the client was not reset");
        }
        for (int i = 0; i < listeners.Length; i++)
            if (((short)(fds[i] >> 48) & PollIn) != 0)
            {
                close(accept(listeners[i], null, null));
                return i;
            }
        byte b;
        if (recv(client, &b, 1, 0) < 0 && Marshal.GetLastPInvokeError() == 104 /* ECONNRESET */) return -1;
        throw new InvalidOperationException($"the client became readable without a reset (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>Writes a sysctl of the calling thread's network namespace (<c>/proc/sys/net/...</c> is per namespace).</summary>
    public static void Sysctl(string name, string value) => File.WriteAllText("/proc/sys/" + name.Replace('.', '/'), value);

    /// <summary>Closes descriptors.</summary>
    public static void Close(params int[] fds)
    {
        foreach (int fd in fds) if (fd >= 0) close(fd);
    }

    /// <summary>
    /// Sends <paramref name="payload"/> from 127.0.0.1:<paramref name="sourcePort"/> to 127.0.0.1:<paramref name="port"/>
    /// (<paramref name="v6"/>: [::1] to [::1]) (UDP) or connects (TCP), and returns the index in <paramref name="members"/> of the socket that received the
    /// datagram or the connection, or -1 when it was refused (ICMP port unreachable, RST).
    /// </summary>
    public static int Deliver(bool tcp, int[] members, ushort sourcePort, ushort port, byte[] payload, bool v6 = false)
    {
        int client = socket(v6 ? AfInet6 : AfInet, tcp ? SockStream : SockDgram, 0);
        Check(client, "socket");
        try
        {
            int one = 1;
            setsockopt(client, SolSocket, 2 /* SO_REUSEADDR */, &one, 4);
            var from = SockAddr(sourcePort, v6);
            var to = SockAddr(port, v6);
            fixed (byte* f = from, t = to)
            {
                Check(bind(client, f, from.Length), $"bind client :{sourcePort}");
                if (connect(client, t, to.Length) != 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (tcp && errno == Econnrefused) return -1;
                    throw new InvalidOperationException($"connect: errno {errno}");
                }
            }
            if (!tcp)
                fixed (byte* d = payload) Check((int)send(client, d, payload.Length, 0), "send");
            // Wait for a member to become readable, or (UDP) the client to see the ICMP error.
            int n = members.Length + (tcp ? 0 : 1);
            var fds = new long[n];
            for (int i = 0; i < members.Length; i++) fds[i] = (uint)members[i] | ((long)PollIn << 32);
            if (!tcp) fds[^1] = (uint)client | ((long)PollIn << 32);
            fixed (long* p = fds)
            {
                int ready = poll(p, (nuint)n, 5000);
                Check(ready, "poll");
                if (ready == 0) throw new InvalidOperationException($"no member received the packet from port {sourcePort}, and it was not refused");
            }
            for (int i = 0; i < members.Length; i++)
            {
                short revents = (short)(fds[i] >> 48);
                if ((revents & PollIn) == 0) continue;
                var buffer = new byte[2048];
                fixed (byte* b = buffer)
                {
                    if (tcp) close(accept(members[i], null, null));
                    else recv(members[i], b, buffer.Length, 0);
                }
                return i;
            }
            return -1;
        }
        finally
        {
            close(client);
        }
    }
}
