using System.Collections.Concurrent;
using System.Net;
using System.Text;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Examples.UdpEcho;

/// <summary>An in-process socket's receive handler: the payload in, the reply payload out (null: no reply).</summary>
public delegate byte[]? DatagramHandler(ReadOnlySpan<byte> payload, IPEndPoint from, IPEndPoint to);

/// <summary>What the stack did with one packet read from the device.</summary>
public enum Verdict
{
    /// <summary>The selected socket's handler answered.</summary>
    Answered,
    /// <summary>The selected socket's handler took the datagram without answering.</summary>
    Delivered,
    /// <summary>The SK_LOOKUP program dropped it (or selected a socket that could not take it): no answer.</summary>
    Refused,
    /// <summary>No socket matched: no answer.</summary>
    NoSocket,
    /// <summary>Not a well-formed unicast UDP datagram over IPv4/IPv6: dropped before the lookup.</summary>
    Malformed,
}

/// <summary>One line of the stack's log: the datagram (or why it is not one) and what happened to it.</summary>
public readonly record struct PacketEvent(Verdict Verdict, string Packet, string? Socket, string Detail)
{
    /// <summary><c>udp 10.77.0.254:40000 -&gt; 10.77.0.1:7003: range answered</c>.</summary>
    public override string ToString() => Socket is null ? $"{Packet}: {Detail}" : $"{Packet}: {Socket} {Detail}";
}

/// <summary>
/// A userspace UDP stack: a BpfJit <see cref="NetNamespace"/> holds its sockets and SK_LOOKUP hook; for
/// each IP packet it parses the UDP datagram, asks the namespace which socket receives it, runs that
/// socket's handler and builds the reply packet. <see cref="Run"/> drives it from a TUN device;
/// <see cref="Process"/> is the per-packet step, usable from any packet source.
/// </summary>
public sealed class EchoStack : IDisposable
{
    readonly ConcurrentDictionary<Sock, DatagramHandler> _handlers = new();
    readonly int _ingressIfindex;
    int _identification;
    long _answered, _delivered, _refused, _noSocket, _malformed;

    /// <summary>Creates a stack with an empty namespace; <paramref name="ingressIfindex"/> is what programs read as <c>ingress_ifindex</c>.</summary>
    public EchoStack(int ingressIfindex = 1)
    {
        _ingressIfindex = ingressIfindex;
    }

    /// <summary>The namespace: socket table and SK_LOOKUP hook.</summary>
    public NetNamespace Namespace { get; } = new();

    /// <summary>Called for every packet with what happened to it (from the thread that processed it).</summary>
    public event Action<PacketEvent>? PacketProcessed;

    /// <summary>Counts by verdict since the stack was created.</summary>
    public IReadOnlyDictionary<Verdict, long> Counts => new Dictionary<Verdict, long>
    {
        [Verdict.Answered] = Interlocked.Read(ref _answered),
        [Verdict.Delivered] = Interlocked.Read(ref _delivered),
        [Verdict.Refused] = Interlocked.Read(ref _refused),
        [Verdict.NoSocket] = Interlocked.Read(ref _noSocket),
        [Verdict.Malformed] = Interlocked.Read(ref _malformed),
    };

    // [sockets]
    /// <summary>
    /// Opens a dual-stack UDP socket named <paramref name="name"/> bound to <c>[::]:<paramref name="port"/></c>
    /// (IPv4 datagrams reach it too) whose datagrams go to <paramref name="handler"/>.
    /// </summary>
    /// <exception cref="SocketErrorException">The bind failed (EADDRINUSE).</exception>
    public Sock Open(string name, ushort port, DatagramHandler handler)
    {
        Sock sock = Namespace.Sockets.Create(SocketFamily.Inet6, SocketProtocol.Udp);
        sock.Name = name;
        sock.V6Only = false;
        sock.Bind(new InetEndPoint(SocketFamily.Inet6, InetAddress.Any6, port));
        _handlers[sock] = handler;
        sock.OnClose(s => _handlers.TryRemove(s, out _));
        return sock;
    }
    // [/sockets]

    /// <summary>An echo service: answers each datagram with <c>NAME: </c> followed by the payload.</summary>
    public static DatagramHandler Echo(string name)
    {
        byte[] prefix = Encoding.ASCII.GetBytes(name + ": ");
        return (payload, _, _) => [.. prefix, .. payload];
    }

    /// <summary>
    /// Handles one IP packet: parse, look up the socket, run its handler. Writes the reply packet into
    /// <paramref name="reply"/> and returns its length, or 0 when there is nothing to send.
    /// </summary>
    public int Process(ReadOnlySpan<byte> packet, Span<byte> reply)
    {
        if (!UdpDatagram.TryParse(packet, out var d, out string reason))
            return Record(Verdict.Malformed, ref _malformed, $"{packet.Length}-byte packet", null, reason, 0);
        string what = $"udp {Format(d.Source)} -> {Format(d.Destination)}";

        // [lookup]
        LookupResult result = Namespace.Lookup(SocketProtocol.Udp, d.Family,
            d.SourceAddress, d.SourcePort, d.DestinationAddress, d.DestinationPort, _ingressIfindex);
        if (result.Outcome == LookupOutcome.Refused)
            return Record(Verdict.Refused, ref _refused, what, null, "refused", 0);
        if (result.Socket is not { } sock || !_handlers.TryGetValue(sock, out var handler))
            return Record(Verdict.NoSocket, ref _noSocket, what, null, "no socket", 0);
        byte[]? answer = handler(d.Payload, d.Source, d.Destination);
        // [/lookup]

        if (answer is null) return Record(Verdict.Delivered, ref _delivered, what, sock.Name, "took it", 0);
        // The reply leaves from the address and port the client sent to.
        int length;
        try
        {
            length = UdpDatagram.Write(reply, d.DestinationAddress, d.DestinationPort, d.SourceAddress, d.SourcePort, answer,
                (ushort)Interlocked.Increment(ref _identification));
        }
        catch (ArgumentException e)
        {
            return Record(Verdict.Delivered, ref _delivered, what, sock.Name, $"answered, but the reply was not sent: {e.Message}", 0);
        }
        return Record(Verdict.Answered, ref _answered, what, sock.Name, "answered", length);
    }

    int Record(Verdict verdict, ref long counter, string packet, string? socket, string detail, int length)
    {
        Interlocked.Increment(ref counter);
        PacketProcessed?.Invoke(new PacketEvent(verdict, packet, socket, detail));
        return length;
    }

    static string Format(IPEndPoint e) => e.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{e.Address}]:{e.Port}" : e.ToString();

    /// <summary>
    /// Reads packets from <paramref name="tun"/> until <paramref name="stop"/> is cancelled, processing each
    /// and writing replies back. Packets are handled in arrival order on the calling thread.
    /// </summary>
    /// <exception cref="TunException">Reading or writing the device failed.</exception>
    public void Run(TunDevice tun, CancellationToken stop)
    {
        ArgumentNullException.ThrowIfNull(tun);
        // [run]
        var packet = new byte[65536];
        var reply = new byte[65536];
        while (!stop.IsCancellationRequested)
        {
            int n = tun.Read(packet, timeoutMs: 100); // 0: nothing yet; look at the token again
            if (n == 0) continue;
            int length = Process(packet.AsSpan(0, n), reply);
            if (length > 0) tun.Write(reply.AsSpan(0, length));
        }
        // [/run]
    }

    /// <summary>Detaches the programs and closes the sockets.</summary>
    public void Dispose() => Namespace.Dispose();
}
