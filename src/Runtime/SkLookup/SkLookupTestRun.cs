using Errno = BpfJit.Runtime.Errno;
using BpfJit.Runtime.Maps;
using System.Buffers.Binary;
using System.Diagnostics;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkLookup;

/// <summary>The attributes of a <c>BPF_PROG_TEST_RUN</c> call, as the bpf() syscall takes them.</summary>
public sealed class TestRunRequest
{
    /// <summary><c>ctx_in</c>: the input <c>struct bpf_sk_lookup</c> bytes, or null.</summary>
    public byte[]? CtxIn { get; init; }
    /// <summary><c>ctx_size_in</c>; defaults to the length of <see cref="CtxIn"/>.</summary>
    public uint? CtxSizeIn { get; init; }
    /// <summary>True when a <c>ctx_out</c> buffer is given.</summary>
    public bool CtxOut { get; init; }
    /// <summary><c>ctx_size_out</c>: the size of the output buffer.</summary>
    public uint CtxSizeOut { get; init; }
    /// <summary><c>data_in</c> given (must not be, for SK_LOOKUP).</summary>
    public bool DataIn { get; init; }
    /// <summary><c>data_size_in</c> (must be 0).</summary>
    public uint DataSizeIn { get; init; }
    /// <summary><c>data_out</c> given (must not be).</summary>
    public bool DataOut { get; init; }
    /// <summary><c>data_size_out</c> (must be 0).</summary>
    public uint DataSizeOut { get; init; }
    /// <summary><c>test.flags</c> (must be 0).</summary>
    public uint Flags { get; init; }
    /// <summary><c>test.cpu</c> (must be 0).</summary>
    public uint Cpu { get; init; }
    /// <summary><c>test.batch_size</c> (must be 0).</summary>
    public uint BatchSize { get; init; }
    /// <summary><c>repeat</c>; 0 means 1.</summary>
    public uint Repeat { get; init; }

    /// <summary>A request with a 72-byte context in and a 72-byte context out.</summary>
    public static TestRunRequest WithContext(byte[] ctx) => new() { CtxIn = ctx, CtxOut = true, CtxSizeOut = SkLookupLayout.Size };
}

/// <summary>What <c>BPF_PROG_TEST_RUN</c> returned.</summary>
public sealed record TestRunResult
{
    /// <summary>0 on success, otherwise a negative errno (the syscall's return).</summary>
    public int Error { get; init; }
    /// <summary><c>retval</c>: the aggregated verdict of the one-element run array.</summary>
    public uint Retval { get; init; }
    /// <summary><c>duration</c>: average ns per repetition.</summary>
    public ulong DurationNs { get; init; }
    /// <summary>The bytes copied to <c>ctx_out</c> (at most <c>ctx_size_out</c>), or null when nothing was written.</summary>
    public byte[]? CtxOut { get; init; }
    /// <summary>The <c>ctx_size_out</c> the kernel writes back (72), or null when not written.</summary>
    public uint? CtxSizeOut { get; init; }
    /// <summary>The cookie of the selected socket (0 when none), as written to <c>ctx_out.cookie</c>.</summary>
    public ulong Cookie { get; init; }
}

/// <summary>
/// <c>bpf_prog_test_run_sk_lookup</c> (spec 6): validates the request exactly as the kernel does,
/// runs the program <c>repeat</c> times through a one-element run array with the selection reset
/// each time, and echoes the input context with <c>cookie</c> = the selected socket's cookie.
/// </summary>
public static class SkLookupTestRun
{
    static TestRunResult Fail(int errno) => new() { Error = -errno };

    /// <summary>Runs <paramref name="program"/> as BPF_PROG_TEST_RUN would.</summary>
    public static TestRunResult Run(SkLookupProgram program, TestRunRequest request)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(request);
        if (request.Flags != 0 || request.Cpu != 0 || request.BatchSize != 0) return Fail(Errno.EINVAL);
        if (request.DataIn || request.DataSizeIn != 0 || request.DataOut || request.DataSizeOut != 0) return Fail(Errno.EINVAL);
        uint repeat = request.Repeat == 0 ? 1 : request.Repeat;

        // bpf_ctx_init: no ctx at all is -EINVAL; a longer ctx_in needs a zero tail (-E2BIG); a shorter one is zero-filled.
        if (request.CtxIn == null && !request.CtxOut) return Fail(Errno.EINVAL);
        var user = new byte[SkLookupLayout.Size];
        if (request.CtxIn != null)
        {
            uint size = request.CtxSizeIn ?? (uint)request.CtxIn.Length;
            if (size > request.CtxIn.Length) return Fail(Errno.EFAULT); // the size runs past the buffer
            if (size > SkLookupLayout.Size && request.CtxIn.AsSpan(SkLookupLayout.Size, (int)size - SkLookupLayout.Size).ContainsAnyExcept((byte)0))
                return Fail(Errno.E2BIG);
            request.CtxIn.AsSpan(0, (int)Math.Min(size, (uint)SkLookupLayout.Size)).CopyTo(user);
        }

        if (BinaryPrimitives.ReadUInt64LittleEndian(user) != 0) return Fail(Errno.EINVAL);
        if (user.AsSpan(SkLookupLayout.IngressIfindex).ContainsAnyExcept((byte)0)) return Fail(Errno.EINVAL);
        if (BinaryPrimitives.ReadUInt32LittleEndian(user.AsSpan(SkLookupLayout.LocalPort)) > ushort.MaxValue) return Fail(Errno.ERANGE);
        ushort family = (ushort)BinaryPrimitives.ReadUInt32LittleEndian(user.AsSpan(SkLookupLayout.Family));
        if (family is not ((ushort)SocketFamily.Inet or (ushort)SocketFamily.Inet6)) return Fail(Errno.EAFNOSUPPORT);

        using var ctx = new SkLookupContext();
        HookVerdict verdict = default;
        ulong cookie = 0;
        bool reuseportWithoutFlag = false;
        var watch = Stopwatch.StartNew();
        MapEpoch.Enter();
        try
        {
            // Checked inside the section: a program alive here keeps its maps until the section ends.
            ObjectDisposedException.ThrowIf(!program.IsLive, program);
            SkLookupProgram[] array = [program];
            for (uint i = 0; i < repeat; i++)
            {
                ctx.FillFromUser(user);
                verdict = SkLookupHook.RunArray(array, ctx);
            }
            watch.Stop();
            if (verdict.Selected != 0)
            {
                // Reuseport selection needs an skb, which a test run lacks.
                if ((Sock.FlagsOf(verdict.Selected) & SockFlags.ReusePort) != 0 && !verdict.NoReuseport) reuseportWithoutFlag = true;
                else cookie = Sock.CookieOf(verdict.Selected);
            }
        }
        finally
        {
            MapEpoch.Exit();
        }
        if (reuseportWithoutFlag) return Fail(Errno.EOPNOTSUPP);

        ulong duration = (ulong)(watch.Elapsed.TotalNanoseconds / repeat);
        BinaryPrimitives.WriteUInt64LittleEndian(user, cookie);
        var result = new TestRunResult { Retval = verdict.Pass ? SkLookupLayout.SkPass : SkLookupLayout.SkDrop, DurationNs = duration, Cookie = cookie };
        if (!request.CtxOut) return result;
        // bpf_ctx_finish: copy what fits, report the full size, -ENOSPC when the buffer was short.
        int copy = (int)Math.Min(request.CtxSizeOut, (uint)SkLookupLayout.Size);
        result = result with { CtxOut = user.AsSpan(0, copy).ToArray(), CtxSizeOut = SkLookupLayout.Size };
        return request.CtxSizeOut < SkLookupLayout.Size ? result with { Error = -Errno.ENOSPC } : result;
    }
}
