using System.Runtime.InteropServices;
using BpfJit.Frontend;

namespace BpfJit.Tests.Support;

/// <summary>
/// The live Linux kernel as a test oracle: BPF_MAP_CREATE, BPF_PROG_LOAD (SK_LOOKUP) and
/// BPF_PROG_TEST_RUN through the bpf() syscall. Tests call <see cref="RequireAvailable"/> first,
/// which marks them ignored, with the errno, where the host does not permit bpf().
/// </summary>
public static unsafe class KernelBpf
{
    const long SysBpf = 321;
    const int MapCreate = 0, ProgLoad = 5, ProgTestRun = 10;
    const uint ProgTypeSkLookup = 30, AttachSkLookup = 36;

    [DllImport("libc", SetLastError = true)]
    static extern long syscall(long number, long cmd, void* attr, long size);

    [DllImport("libc", SetLastError = true)]
    static extern int close(int fd);

    static readonly Lazy<(bool Ok, string Reason)> s_available = new(Probe);

    /// <summary>True when programs can be loaded here.</summary>
    public static bool Available => s_available.Value.Ok;

    /// <summary>Marks the calling test ignored, with the reason, when the kernel cannot be used.</summary>
    public static void RequireAvailable()
    {
        if (!s_available.Value.Ok) Assert.Ignore("kernel oracle unavailable: " + s_available.Value.Reason);
    }

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

    /// <summary>Creates a map; returns the fd or a negative errno.</summary>
    public static int CreateMap(uint type, int keySize, int valueSize, int maxEntries, uint flags)
    {
        var attr = new byte[128];
        fixed (byte* p = attr)
        {
            *(uint*)(p + 0) = type;
            *(uint*)(p + 4) = (uint)keySize;
            *(uint*)(p + 8) = (uint)valueSize;
            *(uint*)(p + 12) = (uint)maxEntries;
            *(uint*)(p + 16) = flags;
            long fd = syscall(SysBpf, MapCreate, p, attr.Length);
            return fd < 0 ? -Marshal.GetLastPInvokeError() : (int)fd;
        }
    }

    /// <summary>Closes a descriptor.</summary>
    public static void Close(int fd)
    {
        if (fd >= 0) close(fd);
    }

    /// <summary>The kernel's verdict on one program.</summary>
    public sealed record LoadResult(bool Accepted, int Errno, string Log);

    /// <summary>
    /// Loads <paramref name="slots"/> as an SK_LOOKUP program. Map references with src 5/6 (index
    /// into <paramref name="mapFds"/>) are rewritten to src 1/2 with the real fd.
    /// </summary>
    public static LoadResult Load(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, int logLevel = 1)
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
        var code = Encoder.Encode(insns);
        var funcs = KernelBtf.NeedsFuncInfo(insns) ? KernelBtf.FuncInfo(insns) : default((int BtfFd, byte[] Records, int Count)?);
        try
        {
            return LoadWithRetries(code, insns.Length, logLevel, funcs);
        }
        finally
        {
            if (funcs is { } f) Close(f.BtfFd);
        }
    }

    static LoadResult LoadWithRetries(byte[] code, int count, int logLevel, (int BtfFd, byte[] Records, int Count)? funcs)
    {
        var result = LoadRaw(code, count, logLevel, 1 << 22, funcs);
        // EAGAIN: the kernel verifier stops when a signal is pending (the .NET runtime signals its
        // threads, e.g. to suspend them for GC). ENOMEM/EPERM with an empty log: memlock accounting of
        // freed programs lags a burst of loads. Both are transient: retry.
        for (int attempt = 0; attempt < 20 && !result.Accepted && (result.Errno == 11 || (result.Log.Length == 0 && result.Errno is 1 or 12)); attempt++)
        {
            Thread.Sleep(50 * (attempt + 1));
            result = LoadRaw(code, count, logLevel, 1 << 22, funcs);
        }
        // A full log buffer fails the load with ENOSPC; the verdict is then asked for without a log.
        if (!result.Accepted && result.Errno == 28 && logLevel > 0)
        {
            var quiet = LoadRaw(code, count, 0, 0, funcs);
            return quiet with { Log = result.Log };
        }
        return result;
    }

    /// <summary>The result of BPF_PROG_TEST_RUN: the program's return value and the context written back.</summary>
    public sealed record RunResult(int Errno, uint Retval, byte[] CtxOut);

    /// <summary>
    /// Loads the program and runs it once with BPF_PROG_TEST_RUN on a 72-byte <c>struct bpf_sk_lookup</c>
    /// (sk-lookup.md section 6). Throws when the kernel rejects the program.
    /// </summary>
    public static RunResult TestRun(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, byte[] ctxIn)
    {
        var insns = slots.ToArray();
        for (int i = 0; i < insns.Length; i++)
        {
            if (!insns[i].IsLdImm64) continue;
            if (insns[i].Src is 5 or 6) insns[i] = insns[i] with { Src = (byte)(insns[i].Src - 4), Imm = mapFds[insns[i].Imm] };
            i++;
        }
        var funcs = KernelBtf.NeedsFuncInfo(insns) ? KernelBtf.FuncInfo(insns) : default((int BtfFd, byte[] Records, int Count)?);
        int fd = LoadFd(Encoder.Encode(insns), insns.Length, funcs, out int loadErrno);
        if (funcs is { } fi) Close(fi.BtfFd);
        if (fd < 0) throw new InvalidOperationException($"BPF_PROG_LOAD failed: errno {loadErrno}");
        try
        {
            var ctxOut = new byte[72];
            var attr = new byte[80];
            fixed (byte* pin = ctxIn, pout = ctxOut, p = attr)
            {
                *(uint*)(p + 0) = (uint)fd;
                *(uint*)(p + 32) = 1;
                *(uint*)(p + 40) = (uint)ctxIn.Length;
                *(uint*)(p + 44) = (uint)ctxOut.Length;
                *(ulong*)(p + 48) = (ulong)pin;
                *(ulong*)(p + 56) = (ulong)pout;
                long r = syscall(SysBpf, ProgTestRun, p, attr.Length);
                int errno = r < 0 ? Marshal.GetLastPInvokeError() : 0;
                return new RunResult(errno, *(uint*)(p + 4), ctxOut);
            }
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>Sets prog_btf_fd, func_info_rec_size, func_info and func_info_cnt of a BPF_PROG_LOAD attribute.</summary>
    static void SetFuncInfo(byte* p, byte* records, (int BtfFd, byte[] Records, int Count) funcs)
    {
        *(uint*)(p + 72) = (uint)funcs.BtfFd;
        *(uint*)(p + 76) = 8;
        *(ulong*)(p + 80) = (ulong)records;
        *(uint*)(p + 88) = (uint)funcs.Count;
    }

    static int LoadFd(byte[] code, int count, (int BtfFd, byte[] Records, int Count)? funcs, out int errno)
    {
        var license = "GPL\0"u8.ToArray();
        var attr = new byte[144];
        fixed (byte* c = code, l = license, p = attr, fr = funcs?.Records)
        {
            if (funcs is { } f) SetFuncInfo(p, fr, f);
            *(uint*)(p + 0) = ProgTypeSkLookup;
            *(uint*)(p + 4) = (uint)count;
            *(ulong*)(p + 8) = (ulong)c;
            *(ulong*)(p + 16) = (ulong)l;
            *(uint*)(p + 68) = AttachSkLookup;
            long fd = syscall(SysBpf, ProgLoad, p, attr.Length);
            errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
            return (int)fd;
        }
    }

    static LoadResult LoadRaw(byte[] code, int count, int logLevel, int logSize, (int BtfFd, byte[] Records, int Count)? funcs)
    {
        var license = "GPL\0"u8.ToArray();
        var log = new byte[Math.Max(logSize, 1)];
        var attr = new byte[144];
        fixed (byte* c = code, l = license, lg = log, p = attr, fr = funcs?.Records)
        {
            if (funcs is { } f) SetFuncInfo(p, fr, f);
            *(uint*)(p + 0) = ProgTypeSkLookup;
            *(uint*)(p + 4) = (uint)count;
            *(ulong*)(p + 8) = (ulong)c;
            *(ulong*)(p + 16) = (ulong)l;
            if (logLevel > 0)
            {
                *(uint*)(p + 24) = (uint)logLevel;
                *(uint*)(p + 28) = (uint)logSize;
                *(ulong*)(p + 32) = (ulong)lg;
            }
            *(uint*)(p + 68) = AttachSkLookup;
            long fd = syscall(SysBpf, ProgLoad, p, attr.Length);
            int errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
            int len = Array.IndexOf(log, (byte)0);
            string text = System.Text.Encoding.UTF8.GetString(log, 0, len < 0 ? log.Length : len);
            if (fd >= 0) close((int)fd);
            return new LoadResult(fd >= 0, errno, text);
        }
    }
}
