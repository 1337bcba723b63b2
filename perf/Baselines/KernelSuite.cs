using System.Buffers.Binary;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Baselines;

/// <summary>One program of a case run by the kernel: BPF_PROG_TEST_RUN's mean <c>duration</c> per run and its decision.</summary>
public sealed record KernelRun(string Case, string Program, uint DurationNs, uint Retval, bool Selected, int Errno);

/// <summary>
/// The kernel as a peer (issue 7): loads a case's programs from the same object into Linux with
/// the same map contents — maps created with BPF_MAP_CREATE and filled with BPF_MAP_UPDATE_ELEM,
/// SOCKMAP slots holding real loopback sockets of the same family and protocol — and times them
/// with BPF_PROG_TEST_RUN on the case's timed packet.
/// </summary>
public static class KernelSuite
{
    /// <summary>
    /// The timed packet's 72-byte context as <c>bpf_prog_test_run_sk_lookup</c> takes it: the runtime's
    /// fill of the packet, with <c>ingress_ifindex</c> (bytes 64-71) zero as the kernel requires.
    /// </summary>
    public static byte[] TestRunContext(SuiteCase suite)
    {
        ArgumentNullException.ThrowIfNull(suite);
        using var ctx = new SkLookupContext();
        ctx.Fill(suite.TimedPacket);
        var bytes = ctx.Visible.ToArray();
        bytes.AsSpan(64).Clear();
        return bytes;
    }

    /// <summary>
    /// Runs each of <paramref name="suite"/>'s programs <paramref name="repeat"/> times in the kernel.
    /// Throws when the kernel refuses a map, a socket or a program (check <see cref="KernelBpf.Available"/> first).
    /// </summary>
    public static IReadOnlyList<KernelRun> Run(SuiteCase suite, uint repeat)
    {
        using var loaded = KernelCase.Open(suite);
        return [.. Enumerable.Range(0, loaded.Programs).Select(i => loaded.Run(i, repeat))];
    }
}

/// <summary>
/// A case loaded into the kernel and kept: its maps created and filled, its sockets open, its programs loaded,
/// so that a caller can time its programs again and again (alternating with the runtime) and read the maps'
/// kernel figures (<c>/proc/self/fdinfo</c>) without filling them again.
/// </summary>
public sealed class KernelCase : IDisposable
{
    readonly SuiteCase _suite;
    readonly List<int> _socketFds = [], _progFds = [];
    readonly int[] _mapFds;
    readonly byte[] _ctx;

    KernelCase(SuiteCase suite)
    {
        _suite = suite;
        _mapFds = Enumerable.Repeat(-1, suite.Object.Spec.Maps.Count).ToArray();
        _ctx = KernelSuite.TestRunContext(suite);
    }

    /// <summary>The number of programs (in the case's order).</summary>
    public int Programs => _progFds.Count;

    /// <summary>Creates and fills the case's maps, opens its sockets and loads its programs. Throws when the kernel refuses one.</summary>
    public static KernelCase Open(SuiteCase suite)
    {
        ArgumentNullException.ThrowIfNull(suite);
        var k = new KernelCase(suite);
        try
        {
            k.Load();
            return k;
        }
        catch
        {
            k.Dispose();
            throw;
        }
    }

    void Load()
    {
        var spec = _suite.Object.Spec;
        var programs = _suite.ProgramNames.Select(n => spec.Programs[n]).ToArray();
        foreach (var s in _suite.SocketSpecs)
            _socketFds.Add(KernelBpf.LoopbackSocket(s.Family == Runtime.Sockets.SocketFamily.Inet6, s.Protocol == Runtime.Sockets.SocketProtocol.Udp));
        foreach (int index in programs.SelectMany(p => p.MapReferences).Select(r => r.MapIndex).Distinct())
        {
            var def = SuiteObject.DefinitionOf(spec.Maps[index]);
            int fd = KernelBpf.CreateMap((uint)def.Type, def.KeySize, def.ValueSize, def.MaxEntries, def.Flags);
            if (fd < 0) throw new InvalidOperationException($"{_suite.Name}: BPF_MAP_CREATE {def.Name}: errno {-fd}");
            _mapFds[index] = fd;
        }
        var value = new byte[8];
        foreach (var fill in _suite.Fills)
        {
            int fd = _mapFds[spec.Maps.IndexOf(fill.Map)];
            if (fd < 0) continue; // a map none of the programs uses
            if (fill.Socket >= 0) BinaryPrimitives.WriteUInt64LittleEndian(value, (ulong)_socketFds[fill.Socket]);
            int err = KernelBpf.UpdateElem(fd, fill.Key, fill.Socket >= 0 ? value : fill.Value);
            if (err != 0) throw new InvalidOperationException($"{_suite.Name}: BPF_MAP_UPDATE_ELEM {fill.Map}: errno {-err}");
        }
        foreach (var p in programs) _progFds.Add(KernelBpf.LoadProgram(p.Instructions, _mapFds));
    }

    /// <summary>Program <paramref name="program"/> run <paramref name="repeat"/> times on the case's timed packet by BPF_PROG_TEST_RUN.</summary>
    public KernelRun Run(int program, uint repeat)
    {
        var r = KernelBpf.TestRun(_progFds[program], _ctx, repeat);
        return new KernelRun(_suite.Name, _suite.ProgramNames[program], r.DurationNs, r.Retval,
            BinaryPrimitives.ReadUInt64LittleEndian(r.CtxOut) != 0, r.Errno);
    }

    /// <summary>The kernel's file descriptor of map <paramref name="name"/> (−1 when no program uses it).</summary>
    public int MapFd(string name) => _mapFds[_suite.Object.Spec.Maps.IndexOf(name)];

    /// <summary>Closes the programs, the maps and the sockets.</summary>
    public void Dispose()
    {
        foreach (int fd in _progFds) KernelBpf.Close(fd);
        foreach (int fd in _mapFds) KernelBpf.Close(fd);
        foreach (int fd in _socketFds) KernelBpf.Close(fd);
    }
}
