using System.Buffers.Binary;
using System.Runtime.InteropServices;
using BpfJit.Frontend;

namespace BpfJit.Baselines;

/// <summary>
/// The live Linux kernel through the bpf() syscall: BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM,
/// BPF_PROG_LOAD (SK_LOOKUP) and BPF_PROG_TEST_RUN, plus the real sockets a SOCKMAP needs.
/// <see cref="Available"/> says whether this host permits it (Linux x86-64, bpf() allowed); the
/// tests use it as an oracle, the benchmark suite as a peer.
/// </summary>
public static unsafe class KernelBpf
{
    const long SysBpf = 321;
    const int MapCreate = 0, MapLookupElem = 1, MapUpdateElem = 2, MapDeleteElem = 3, MapGetNextKey = 4, ProgLoad = 5, ProgTestRun = 10, ObjGetInfoByFd = 15, MapLookupAndDeleteElem = 21, MapFreeze = 22;
    const uint ProgTypeSkLookup = 30, AttachSkLookup = 36;

    [DllImport("libc", SetLastError = true)]
    static extern long syscall(long number, long cmd, void* attr, long size);

    [DllImport("libc", SetLastError = true)]
    static extern int close(int fd);

    [DllImport("libc", SetLastError = true)]
    static extern int socket(int domain, int type, int protocol);

    [DllImport("libc", SetLastError = true)]
    static extern int bind(int fd, void* addr, int len);

    [DllImport("libc", SetLastError = true)]
    static extern int listen(int fd, int backlog);

    static readonly Lazy<(bool Ok, string Reason)> s_available = new(Probe);

    /// <summary>True when SK_LOOKUP programs can be loaded here.</summary>
    public static bool Available => s_available.Value.Ok;

    /// <summary>Why <see cref="Available"/> is false (empty when it is true).</summary>
    public static string UnavailableReason => s_available.Value.Reason;

    static (bool, string) Probe()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return (false, "not Linux x86-64");
        try
        {
            var r = Load(Assembler.Assemble("mov %r0, 1\nexit"), [], logLevel: 1);
            return r.Accepted ? (true, "") : (false, $"BPF_PROG_LOAD failed errno={r.Errno}: {r.Log}");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return (false, e.Message);
        }
    }

    /// <summary>
    /// Creates a map; returns the fd or a negative errno. <paramref name="innerMapFd"/> is the inner_map_fd of a
    /// map-in-map (the map whose shape every stored map must have); 0 leaves it unset. <paramref name="numaNode"/>
    /// is read by the kernel only with BPF_F_NUMA_NODE.
    /// </summary>
    public static int CreateMap(uint type, int keySize, int valueSize, int maxEntries, uint flags, int innerMapFd = 0, uint numaNode = 0)
    {
        var attr = new byte[128];
        fixed (byte* p = attr)
        {
            *(uint*)(p + 0) = type;
            *(uint*)(p + 4) = (uint)keySize;
            *(uint*)(p + 8) = (uint)valueSize;
            *(uint*)(p + 12) = (uint)maxEntries;
            *(uint*)(p + 16) = flags;
            *(int*)(p + 20) = innerMapFd;
            *(uint*)(p + 24) = numaNode;
            long fd = syscall(SysBpf, MapCreate, p, attr.Length);
            return fd < 0 ? -Marshal.GetLastPInvokeError() : (int)fd;
        }
    }

    /// <summary>BPF_MAP_UPDATE_ELEM; returns 0 or a negative errno.</summary>
    public static int UpdateElem(int mapFd, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags = 0)
    {
        var attr = new byte[32];
        fixed (byte* k = key, v = value, p = attr)
        {
            *(uint*)(p + 0) = (uint)mapFd;
            *(ulong*)(p + 8) = (ulong)k;
            *(ulong*)(p + 16) = (ulong)v;
            *(ulong*)(p + 24) = flags;
            long r = syscall(SysBpf, MapUpdateElem, p, attr.Length);
            return r < 0 ? -Marshal.GetLastPInvokeError() : 0;
        }
    }

    /// <summary>BPF_MAP_LOOKUP_ELEM (with <paramref name="flags"/>: BPF_F_LOCK); returns 0 or a negative errno.</summary>
    public static int LookupElem(int mapFd, ReadOnlySpan<byte> key, Span<byte> value, ulong flags = 0)
    {
        var attr = new byte[32];
        fixed (byte* k = key, v = value, p = attr)
        {
            *(uint*)(p + 0) = (uint)mapFd;
            *(ulong*)(p + 8) = (ulong)k;
            *(ulong*)(p + 16) = (ulong)v;
            *(ulong*)(p + 24) = flags;
            long r = syscall(SysBpf, MapLookupElem, p, attr.Length);
            return r < 0 ? -Marshal.GetLastPInvokeError() : 0;
        }
    }

    /// <summary>BPF_MAP_LOOKUP_AND_DELETE_ELEM (a QUEUE/STACK pop); returns 0 or a negative errno.</summary>
    public static int LookupAndDeleteElem(int mapFd, ReadOnlySpan<byte> key, Span<byte> value, ulong flags = 0)
    {
        var attr = new byte[32];
        fixed (byte* k = key, v = value, p = attr)
        {
            *(uint*)(p + 0) = (uint)mapFd;
            *(ulong*)(p + 8) = key.IsEmpty ? 0 : (ulong)k;
            *(ulong*)(p + 16) = (ulong)v;
            *(ulong*)(p + 24) = flags;
            long r = syscall(SysBpf, MapLookupAndDeleteElem, p, attr.Length);
            return r < 0 ? -Marshal.GetLastPInvokeError() : 0;
        }
    }

    /// <summary>BPF_MAP_DELETE_ELEM; returns 0 or a negative errno.</summary>
    public static int DeleteElem(int mapFd, ReadOnlySpan<byte> key)
    {
        var attr = new byte[32];
        fixed (byte* k = key, p = attr)
        {
            *(uint*)(p + 0) = (uint)mapFd;
            *(ulong*)(p + 8) = (ulong)k;
            long r = syscall(SysBpf, MapDeleteElem, p, attr.Length);
            return r < 0 ? -Marshal.GetLastPInvokeError() : 0;
        }
    }

    /// <summary>BPF_MAP_GET_NEXT_KEY (an empty <paramref name="key"/> asks for the first key); returns 0 or a negative errno.</summary>
    public static int GetNextKey(int mapFd, ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        var attr = new byte[24];
        fixed (byte* k = key, n = nextKey, p = attr)
        {
            *(uint*)(p + 0) = (uint)mapFd;
            *(ulong*)(p + 8) = key.IsEmpty ? 0 : (ulong)k;
            *(ulong*)(p + 16) = (ulong)n;
            long r = syscall(SysBpf, MapGetNextKey, p, attr.Length);
            return r < 0 ? -Marshal.GetLastPInvokeError() : 0;
        }
    }

    /// <summary>BPF_MAP_FREEZE; returns 0 or a negative errno.</summary>
    public static int Freeze(int mapFd)
    {
        var attr = new byte[8];
        fixed (byte* p = attr)
        {
            *(uint*)p = (uint)mapFd;
            long r = syscall(SysBpf, MapFreeze, p, attr.Length);
            return r < 0 ? -Marshal.GetLastPInvokeError() : 0;
        }
    }

    /// <summary>Closes a descriptor.</summary>
    public static void Close(int fd)
    {
        if (fd >= 0) close(fd);
    }

    /// <summary>
    /// A real socket bound to the loopback address on an ephemeral port: TCP listening, UDP bound.
    /// Returns the fd; throws when the host refuses.
    /// </summary>
    public static int LoopbackSocket(bool ipv6, bool udp)
    {
        int family = ipv6 ? 10 : 2;
        int fd = socket(family, udp ? 2 : 1, 0);
        if (fd < 0) throw new InvalidOperationException($"socket: errno {Marshal.GetLastPInvokeError()}");
        var addr = new byte[28];
        BinaryPrimitives.WriteUInt16LittleEndian(addr, (ushort)family);
        if (ipv6) addr[8 + 15] = 1; // ::1
        else { addr[4] = 127; addr[7] = 1; } // 127.0.0.1
        fixed (byte* a = addr)
        {
            if (bind(fd, a, ipv6 ? 28 : 16) != 0 || (!udp && listen(fd, 16) != 0))
            {
                int errno = Marshal.GetLastPInvokeError();
                close(fd);
                throw new InvalidOperationException($"bind/listen: errno {errno}");
            }
        }
        return fd;
    }

    /// <summary>The kernel's verdict on one program.</summary>
    public sealed record LoadResult(bool Accepted, int Errno, string Log);

    /// <summary>
    /// Rewrites map references with src 5/6 (index into <paramref name="mapFds"/>) to src 1/2 with the real fd.
    /// </summary>
    static Instruction[] WithFds(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds)
    {
        var insns = slots.ToArray();
        for (int i = 0; i < insns.Length; i++)
        {
            var ins = insns[i];
            if (!ins.IsLdImm64) continue;
            if (ins.Src is 5 or 6 or 1 or 2)
            {
                byte src = ins.Src switch { 5 => 1, 6 => 2, _ => ins.Src };
                int fd = ins.Imm >= 0 && ins.Imm < mapFds.Count ? mapFds[ins.Imm] : ins.Imm;
                insns[i] = ins with { Src = src, Imm = fd };
            }
            i++;
        }
        return insns;
    }

    /// <summary>
    /// Loads <paramref name="slots"/> as an SK_LOOKUP program and closes it again: the kernel
    /// verifier's verdict and log. Map references with src 5/6 index <paramref name="mapFds"/>;
    /// <paramref name="license"/> is BPF_PROG_LOAD's license string.
    /// </summary>
    public static LoadResult Load(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, int logLevel = 1, string license = "GPL") =>
        Load(slots, mapFds, ProgTypeSkLookup, AttachSkLookup, logLevel, license);

    /// <summary>
    /// Loads <paramref name="slots"/> as a program of kernel type <paramref name="progType"/> with
    /// <paramref name="expectedAttachType"/> (BPF_PROG_LOAD's expected_attach_type) and closes it again.
    /// </summary>
    public static LoadResult Load(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, uint progType, uint expectedAttachType, int logLevel = 1, string license = "GPL")
    {
        var insns = WithFds(slots, mapFds);
        var code = Encoder.Encode(insns);
        int logSize = logLevel > 0 ? 1 << 22 : 0;   // a verdict alone needs no 4 MiB buffer (and no GC it would cause)
        var funcs = KernelBtf.NeedsFuncInfo(insns) ? KernelBtf.FuncInfo(insns) : default((int BtfFd, byte[] Records, int Count)?);
        try
        {
            var result = Retry(() => LoadRaw(code, insns.Length, logLevel, logSize, keep: false, funcs, out _, license, progType, expectedAttachType));
            // A full log buffer fails the load with ENOSPC; the verdict is then asked for without a log.
            if (!result.Accepted && result.Errno == 28 && logLevel > 0)
            {
                var quiet = LoadRaw(code, insns.Length, 0, 0, keep: false, funcs, out _, license, progType, expectedAttachType);
                return quiet with { Log = result.Log };
            }
            return result;
        }
        finally
        {
            if (funcs is { } f) Close(f.BtfFd);
        }
    }

    /// <summary>
    /// Loads <paramref name="slots"/> as an SK_LOOKUP program with BTF func_info: <paramref name="btfFd"/>
    /// (from <see cref="KernelBtf.LoadObjectBtf"/>) and one (first instruction, FUNC type id) per
    /// subprogram, which is how the kernel learns which functions are global and their prototypes.
    /// </summary>
    public static LoadResult Load(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, int btfFd, IReadOnlyList<(int InsnOff, uint TypeId)> funcInfo, int logLevel = 1)
    {
        ArgumentNullException.ThrowIfNull(funcInfo);
        var insns = WithFds(slots, mapFds);
        var code = Encoder.Encode(insns);
        var records = new byte[funcInfo.Count * 8];
        for (int i = 0; i < funcInfo.Count; i++)
        {
            BitConverter.GetBytes((uint)funcInfo[i].InsnOff).CopyTo(records, i * 8);
            BitConverter.GetBytes(funcInfo[i].TypeId).CopyTo(records, i * 8 + 4);
        }
        int logSize = logLevel > 0 ? 1 << 22 : 0;
        return Retry(() => LoadRaw(code, insns.Length, logLevel, logSize, keep: false, (btfFd, records, funcInfo.Count), out _));
    }

    /// <summary>The tag the kernel computed for the program <paramref name="progFd"/> (bpf_prog_info.tag, 16 hex digits).</summary>
    public static string ProgramTag(int progFd)
    {
        // BPF_OBJ_GET_INFO_BY_FD: struct bpf_prog_info starts with type (u32), id (u32), tag[8].
        byte* info = stackalloc byte[256];
        new Span<byte>(info, 256).Clear();
        byte* attr = stackalloc byte[16];
        new Span<byte>(attr, 16).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(attr, 4), (uint)progFd);
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(attr + 4, 4), 256);
        BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(attr + 8, 8), (ulong)info);
        long r = syscall(SysBpf, ObjGetInfoByFd, attr, 16);
        if (r < 0) throw new InvalidOperationException($"BPF_OBJ_GET_INFO_BY_FD failed: errno {Marshal.GetLastPInvokeError()}");
        return Convert.ToHexStringLower(new ReadOnlySpan<byte>(info + 8, 8));
    }

    /// <summary>
    /// Loads <paramref name="slots"/> as an SK_LOOKUP program and returns its fd (the caller closes
    /// it); throws with the kernel's log when it is rejected.
    /// </summary>
    public static int LoadProgram(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds)
    {
        var insns = WithFds(slots, mapFds);
        var code = Encoder.Encode(insns);
        int fd = -1;
        var funcs = KernelBtf.NeedsFuncInfo(insns) ? KernelBtf.FuncInfo(insns) : default((int BtfFd, byte[] Records, int Count)?);
        LoadResult result;
        try
        {
            result = Retry(() => LoadRaw(code, insns.Length, 1, 1 << 22, keep: true, funcs, out fd));
        }
        finally
        {
            if (funcs is { } f) Close(f.BtfFd);
        }
        if (!result.Accepted) throw new InvalidOperationException($"BPF_PROG_LOAD failed: errno {result.Errno}: {result.Log}");
        return fd;
    }

    // EAGAIN: the kernel verifier stops when a signal is pending (the .NET runtime signals its
    // threads, e.g. to suspend them for GC). ENOMEM/EPERM with an empty log: memlock accounting of
    // freed programs lags a burst of loads. Both are transient: retry.
    static LoadResult Retry(Func<LoadResult> load)
    {
        var result = load();
        for (int attempt = 0; attempt < 20 && !result.Accepted && (result.Errno == 11 || (result.Log.Length == 0 && result.Errno is 1 or 12)); attempt++)
        {
            Thread.Sleep(50 * (attempt + 1));
            result = load();
        }
        return result;
    }

    /// <summary>The result of BPF_PROG_TEST_RUN: the program's return value, the context written back, and the kernel's mean ns per run.</summary>
    public sealed record RunResult(int Errno, uint Retval, byte[] CtxOut, uint DurationNs = 0);

    /// <summary>
    /// Loads the program and runs it once with BPF_PROG_TEST_RUN on a 72-byte <c>struct bpf_sk_lookup</c>
    /// (sk-lookup.md section 6). Throws when the kernel rejects the program.
    /// </summary>
    public static RunResult TestRun(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, byte[] ctxIn)
    {
        int fd = LoadProgram(slots, mapFds);
        try { return TestRun(fd, ctxIn, 1); }
        finally { close(fd); }
    }

    /// <summary>
    /// BPF_PROG_TEST_RUN of a loaded SK_LOOKUP program <paramref name="repeat"/> times on
    /// <paramref name="ctxIn"/>; <see cref="RunResult.DurationNs"/> is the kernel's <c>duration</c>,
    /// the mean time per run in ns.
    /// </summary>
    public static RunResult TestRun(int progFd, byte[] ctxIn, uint repeat)
    {
        ArgumentNullException.ThrowIfNull(ctxIn);
        var ctxOut = new byte[72];
        var attr = new byte[80];
        fixed (byte* pin = ctxIn, pout = ctxOut, p = attr)
        {
            *(uint*)(p + 0) = (uint)progFd;
            *(uint*)(p + 32) = repeat;
            *(uint*)(p + 40) = (uint)ctxIn.Length;
            *(uint*)(p + 44) = (uint)ctxOut.Length;
            *(ulong*)(p + 48) = (ulong)pin;
            *(ulong*)(p + 56) = (ulong)pout;
            long r = syscall(SysBpf, ProgTestRun, p, attr.Length);
            int errno = r < 0 ? Marshal.GetLastPInvokeError() : 0;
            return new RunResult(errno, *(uint*)(p + 4), ctxOut, *(uint*)(p + 36));
        }
    }

    // funcs: BTF func_info for a program that takes a callback's address (the kernel requires it), or null.
    static LoadResult LoadRaw(byte[] code, int count, int logLevel, int logSize, bool keep, (int BtfFd, byte[] Records, int Count)? funcs, out int progFd,
        string licenseText = "GPL", uint progType = ProgTypeSkLookup, uint expectedAttachType = AttachSkLookup)
    {
        var license = System.Text.Encoding.UTF8.GetBytes(licenseText + "\0");
        var log = new byte[Math.Max(logSize, 1)];
        var attr = new byte[144];
        fixed (byte* c = code, l = license, lg = log, p = attr, fr = funcs?.Records)
        {
            if (funcs is { } f)
            {
                // prog_btf_fd, func_info_rec_size, func_info, func_info_cnt
                *(uint*)(p + 72) = (uint)f.BtfFd;
                *(uint*)(p + 76) = 8;
                *(ulong*)(p + 80) = (ulong)fr;
                *(uint*)(p + 88) = (uint)f.Count;
            }
            *(uint*)(p + 0) = progType;
            *(uint*)(p + 4) = (uint)count;
            *(ulong*)(p + 8) = (ulong)c;
            *(ulong*)(p + 16) = (ulong)l;
            if (logLevel > 0)
            {
                *(uint*)(p + 24) = (uint)logLevel;
                *(uint*)(p + 28) = (uint)logSize;
                *(ulong*)(p + 32) = (ulong)lg;
            }
            *(uint*)(p + 68) = expectedAttachType;
            long fd = syscall(SysBpf, ProgLoad, p, attr.Length);
            int errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
            int len = Array.IndexOf(log, (byte)0);
            string text = System.Text.Encoding.UTF8.GetString(log, 0, len < 0 ? log.Length : len);
            progFd = keep ? (int)fd : -1;
            if (fd >= 0 && !keep) close((int)fd);
            return new LoadResult(fd >= 0, errno, text);
        }
    }
}
