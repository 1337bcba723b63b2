using System.Buffers.Binary;
using System.Net;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Baselines;

/// <summary>A socket a case needs: in the runtime's namespace and, for the kernel column, as a real loopback socket.</summary>
public sealed record SuiteSocket(SocketFamily Family, SocketProtocol Protocol);

/// <summary>
/// One map write of a case's setup, replayed into the runtime's map and into the kernel's:
/// <see cref="Value"/> bytes, or (socket maps) the index of a socket in <see cref="SuiteCase.SocketSpecs"/>.
/// </summary>
public sealed record SuiteFill(string Map, byte[] Key, byte[]? Value, int Socket = -1);

/// <summary>
/// One program (or chain) of the SK_LOOKUP benchmark suite, set up on the runtime: its object's
/// maps filled, its sockets listening in <see cref="Namespace"/>, its programs loadable on any
/// engine, its hand-written baselines bound to the same maps, a timed packet and a generator of
/// random ones. <see cref="SuiteCases"/> builds them.
/// </summary>
public sealed class SuiteCase : IDisposable
{
    readonly List<Sock> _sockets = [];
    SkLookupBaseline[]? _baselines;

    internal SuiteCase(string name, string objectPath, string[] programs, SuiteSocket[] sockets, SuiteFill[] fills,
        Packet timed, bool timedSelects, Func<Random, Packet> random, Func<IReadOnlyList<BpfMap>, SkLookupBaseline[]> baselines)
    {
        Name = name;
        ObjectPath = objectPath;
        ProgramNames = programs;
        SocketSpecs = sockets;
        Fills = fills;
        TimedPacket = timed;
        TimedSelects = timedSelects;
        RandomPacketFactory = random;
        BaselineFactory = baselines;
        Namespace = new NetNamespace();
        Object = SuiteObject.Load(objectPath);
        try { Populate(); }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The case's name (a benchmark parameter).</summary>
    public string Name { get; }

    /// <summary>The object file.</summary>
    public string ObjectPath { get; }

    /// <summary>The programs, in hook order.</summary>
    public IReadOnlyList<string> ProgramNames { get; }

    /// <summary>The sockets the maps refer to, by index.</summary>
    public IReadOnlyList<SuiteSocket> SocketSpecs { get; }

    /// <summary>The map contents.</summary>
    public IReadOnlyList<SuiteFill> Fills { get; }

    /// <summary>The packet timed.</summary>
    public Packet TimedPacket { get; }

    /// <summary>Whether the timed packet makes the case select a socket.</summary>
    public bool TimedSelects { get; }

    Func<Random, Packet> RandomPacketFactory { get; }

    Func<IReadOnlyList<BpfMap>, SkLookupBaseline[]> BaselineFactory { get; }

    /// <summary>The namespace: the case's sockets are bound (and listening, for TCP) in it.</summary>
    public NetNamespace Namespace { get; }

    /// <summary>The object, with live, filled maps.</summary>
    public SuiteObject Object { get; }

    /// <summary>The runtime sockets, in <see cref="SocketSpecs"/> order.</summary>
    public IReadOnlyList<Sock> Sockets => _sockets;

    /// <summary>The hand-written baselines, one per program, bound to <see cref="Object"/>'s maps.</summary>
    public IReadOnlyList<SkLookupBaseline> Baselines => _baselines ??= BaselineFactory(Object.Maps);

    /// <summary>A random packet: mostly near the case's interesting destinations, some anywhere.</summary>
    public Packet RandomPacket(Random rng) => RandomPacketFactory(rng);

    /// <summary>Verifies, binds and prepares the case's programs on <paramref name="engine"/>.</summary>
    public SkLookupProgram[] LoadPrograms(IBpfEngine engine) => ProgramNames.Select(n => Object.LoadProgram(n, engine)).ToArray();

    /// <summary>The case's programs as hand-written baselines behind <see cref="HandWrittenEngine"/>, attachable like any program.</summary>
    public SkLookupProgram[] LoadHandWritten() =>
        ProgramNames.Select((n, i) => Object.LoadProgram(n, new HandWrittenEngine(Baselines[i]))).ToArray();

    void Populate()
    {
        ushort port = 30000;
        foreach (var spec in SocketSpecs)
        {
            var s = Namespace.Sockets.Create(spec.Family, spec.Protocol);
            var loopback = spec.Family == SocketFamily.Inet ? InetAddress.FromIp4Raw(0x0100007f) : InetAddress.From(IPAddress.IPv6Loopback);
            s.Bind(new InetEndPoint(spec.Family, loopback, port++));
            if (spec.Protocol == SocketProtocol.Tcp) s.Listen();
            _sockets.Add(s);
        }
        foreach (var fill in Fills)
        {
            var map = Object.Map(fill.Map);
            int err = map is SockMap sockMap && fill.Socket >= 0
                ? sockMap.Update(BinaryPrimitives.ReadUInt32LittleEndian(fill.Key), _sockets[fill.Socket])
                : map.Update(fill.Key, fill.Value ?? throw new InvalidOperationException($"{Name}: fill of {fill.Map} has no value"));
            if (err != 0) throw new InvalidOperationException($"{Name}: update of {fill.Map}: errno {-err}");
        }
    }

    /// <summary>Closes the sockets and disposes the maps.</summary>
    public void Dispose()
    {
        Namespace.Dispose();
        Object.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => Name;
}
