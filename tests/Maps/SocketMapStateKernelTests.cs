using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;
using KernelMaps = BpfJit.Tests.Support.KernelBpf;

namespace BpfJit.Tests.Maps;

/// <summary>
/// Userspace updates of SOCKMAP and SOCKHASH by socket state, run on the live kernel and on BpfJit side by side: the same
/// socket in the same state (made with the same calls: socket, bind, listen, shutdown) is put into a fresh map of each
/// type with each flag, into an empty key and over a key that holds a listener, and the two errnos must be equal. The
/// kernel's side runs in a fresh network namespace; the test skips with the reason where bpf() or unshare is refused.
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class SocketMapStateKernelTests
{
    /// <summary>The socket states, each built by the same calls on both sides.</summary>
    public static readonly string[] States =
        ["tcp unbound", "tcp bound", "tcp listening", "tcp listener shut down", "tcp listener shut down, listening again", "tcp established",
         "udp unbound", "udp bound", "udp connected"];

    static readonly (string Name, ulong Flags, bool KeyHeld)[] s_updates =
    [
        ("any, empty key", 0, false), ("any, held key", 0, true), ("noexist, empty key", 1, false), ("noexist, held key", 1, true),
        ("exist, empty key", 2, false), ("exist, held key", 2, true), ("flags 3", 3, false), ("flags 4 (F_LOCK)", 4, true),
    ];

    public static IEnumerable<TestCaseData> Cases() =>
        from type in new[] { MapType.SockMap, MapType.SockHash }
        from state in States
        from update in s_updates
        select new TestCaseData(type, state, update.Name).SetName($"{type}: {state}, {update.Name}");

    const ushort ListenerPort = 9500, StatePort = 9501;

    [TestCaseSource(nameof(Cases))]
    public void AnUpdateGivesTheKernelsErrno(MapType type, string state, string updateName)
    {
        RealReuseport.RequireAvailable();
        var (_, flags, keyHeld) = s_updates.Single(u => u.Name == updateName);
        int kernel = RealReuseport.InFreshNamespace(() => KernelUpdate(type, state, flags, keyHeld));
        int bpfJit = BpfJitUpdate(type, state, flags, keyHeld);
        Assert.That(bpfJit, Is.EqualTo(kernel), $"{type} {state} {updateName}: BpfJit {bpfJit}, the kernel {kernel}");
    }

    static byte[] Key(uint k) => BitConverter.GetBytes(k);

    static int KernelUpdate(MapType type, string state, ulong flags, bool keyHeld)
    {
        int map = KernelMaps.CreateMap((uint)type, 4, 8, 4, 0);
        Assert.That(map, Is.GreaterThan(0), "BPF_MAP_CREATE");
        int listener = RealReuseport.NewSocket(tcp: true, reuseport: false);
        int socket = RealReuseport.NewSocket(tcp: state.StartsWith("tcp", StringComparison.Ordinal), reuseport: false);
        try
        {
            RealReuseport.BindLoopback(listener, ListenerPort);
            RealReuseport.Listen(listener);
            if (keyHeld) Assert.That(KernelMaps.Update(map, Key(1), BitConverter.GetBytes((ulong)listener)), Is.Zero, "the listener into key 1");
            if (state != "tcp unbound" && state != "udp unbound") RealReuseport.BindLoopback(socket, StatePort);
            if (state.StartsWith("tcp listen", StringComparison.Ordinal)) RealReuseport.Listen(socket);
            if (state.Contains("shut down", StringComparison.Ordinal)) Assert.That(RealReuseport.Shutdown(socket, 0), Is.Zero, "shutdown(SHUT_RD)");
            if (state.EndsWith("listening again", StringComparison.Ordinal)) RealReuseport.Listen(socket);
            if (state is "tcp established" or "udp connected") RealReuseport.ConnectTo(socket, ListenerPort);
            return KernelMaps.Update(map, Key(1), BitConverter.GetBytes((ulong)socket), flags);
        }
        finally
        {
            RealReuseport.Close(socket, listener);
            KernelMaps.Close(map);
        }
    }

    static int BpfJitUpdate(MapType type, string state, ulong flags, bool keyHeld)
    {
        using var ns = new NetNamespace();
        using var map = (SocketMapBase)MapFactory.Create(type, 4, 8, 4, 0, "m");
        var listener = Tcp(ns, $"127.0.0.1:{ListenerPort}");
        var socket = ns.Sockets.Create(SocketFamily.Inet, state.StartsWith("tcp", StringComparison.Ordinal) ? SocketProtocol.Tcp : SocketProtocol.Udp);
        if (keyHeld) Assert.That(map.Update(Key(1), BitConverter.GetBytes(listener.Cookie)), Is.Zero, "the listener into key 1");
        if (state != "tcp unbound" && state != "udp unbound") socket.Bind(Ep($"127.0.0.1:{StatePort}"));
        if (state.StartsWith("tcp listen", StringComparison.Ordinal)) socket.Listen();
        if (state.Contains("shut down", StringComparison.Ordinal)) socket.Shutdown(ShutdownHow.Read);
        if (state.EndsWith("listening again", StringComparison.Ordinal)) socket.Listen();
        if (state is "tcp established" or "udp connected") socket.Connect(Ep($"127.0.0.1:{ListenerPort}"));
        return map.Update(Key(1), BitConverter.GetBytes(socket.Cookie), flags);
    }
}
