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
        ArgumentNullException.ThrowIfNull(suite);
        var spec = suite.Object.Spec;
        var programs = suite.ProgramNames.Select(n => spec.Programs[n]).ToArray();
        var socketFds = new List<int>();
        var mapFds = Enumerable.Repeat(-1, spec.Maps.Count).ToArray();
        var progFds = new List<int>();
        try
        {
            foreach (var s in suite.SocketSpecs)
                socketFds.Add(KernelBpf.LoopbackSocket(s.Family == Runtime.Sockets.SocketFamily.Inet6, s.Protocol == Runtime.Sockets.SocketProtocol.Udp));
            foreach (int index in programs.SelectMany(p => p.MapReferences).Select(r => r.MapIndex).Distinct())
            {
                var def = SuiteObject.DefinitionOf(spec.Maps[index]);
                int fd = KernelBpf.CreateMap((uint)def.Type, def.KeySize, def.ValueSize, def.MaxEntries, def.Flags);
                if (fd < 0) throw new InvalidOperationException($"{suite.Name}: BPF_MAP_CREATE {def.Name}: errno {-fd}");
                mapFds[index] = fd;
            }
            var value = new byte[8];
            foreach (var fill in suite.Fills)
            {
                int fd = mapFds[spec.Maps.IndexOf(fill.Map)];
                if (fd < 0) continue; // a map none of the programs uses
                if (fill.Socket >= 0) BinaryPrimitives.WriteUInt64LittleEndian(value, (ulong)socketFds[fill.Socket]);
                int err = KernelBpf.UpdateElem(fd, fill.Key, fill.Socket >= 0 ? value : fill.Value);
                if (err != 0) throw new InvalidOperationException($"{suite.Name}: BPF_MAP_UPDATE_ELEM {fill.Map}: errno {-err}");
            }
            foreach (var p in programs) progFds.Add(KernelBpf.LoadProgram(p.Instructions, mapFds));
            var ctx = TestRunContext(suite);
            var runs = new List<KernelRun>();
            for (int i = 0; i < programs.Length; i++)
            {
                var r = KernelBpf.TestRun(progFds[i], ctx, repeat);
                runs.Add(new KernelRun(suite.Name, programs[i].Name, r.DurationNs, r.Retval,
                    BinaryPrimitives.ReadUInt64LittleEndian(r.CtxOut) != 0, r.Errno));
            }
            return runs;
        }
        finally
        {
            foreach (int fd in progFds) KernelBpf.Close(fd);
            foreach (int fd in mapFds) KernelBpf.Close(fd);
            foreach (int fd in socketFds) KernelBpf.Close(fd);
        }
    }
}
