namespace BpfJit.Runtime.Sockets;

/// <summary>
/// The part of an arriving packet a socket lookup needs: protocol, family, source (remote) and
/// destination (local) end points, and the arriving interface.
/// </summary>
public readonly record struct Packet(SocketProtocol Protocol, InetEndPoint From, InetEndPoint To, int IngressIfindex = 1)
{
    /// <summary>
    /// The packet's bytes from the transport header on (the TCP or UDP header, then the payload), as the kernel's skb
    /// data at the socket lookup: what an SK_REUSEPORT program reads between <c>data</c> and <c>data_end</c>. Empty:
    /// the runtime builds a minimal header from the 4-tuple (SK_LOOKUP programs never read the packet).
    /// </summary>
    public ReadOnlyMemory<byte> Bytes { get; init; }

    /// <summary>
    /// The flow hash the stack computed for the packet's 4-tuple, or null for <see cref="Hash"/>: a reuseport group
    /// selects by it and an SK_REUSEPORT program reads it as <c>hash</c> (the kernel's <c>inet_ehashfn</c> /
    /// <c>udp_ehashfn</c>, keyed by a per-boot secret; a host that has its own, or replays the kernel's, passes it here).
    /// </summary>
    public uint? FlowHash { get; init; }

    /// <summary>The largest <c>payload</c> <see cref="WithPayload"/> takes: an IPv4 datagram's 65,535 bytes less its IP and TCP headers.</summary>
    public const int MaxPayload = 65535 - 20 - 20;

    /// <summary>
    /// This packet with <see cref="Bytes"/> set to the runtime's stand-in transport header for its 4-tuple (the 20-byte
    /// TCP SYN, or the 8-byte UDP header, its length field covering the payload) followed by <paramref name="payload"/>:
    /// what an SK_REUSEPORT program then reads between <c>data</c> and <c>data_end</c> (a QUIC datagram, a SYN's data).
    /// </summary>
    /// <exception cref="ArgumentException">The payload is longer than <see cref="MaxPayload"/>.</exception>
    public Packet WithPayload(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > MaxPayload)
            throw new ArgumentException($"a payload of {payload.Length} bytes is longer than {MaxPayload}", nameof(payload));
        int header = Protocol == SocketProtocol.Udp ? 8 : 20;
        var bytes = new byte[header + payload.Length];
        SkReuseport.SkReuseportContext.BuildTransport(this, bytes.AsSpan(0, header));
        if (Protocol == SocketProtocol.Udp) System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), (ushort)bytes.Length);
        payload.CopyTo(bytes.AsSpan(header));
        return this with { Bytes = bytes };
    }

    /// <summary>
    /// The CPU the stack processes the packet on (the kernel's <c>raw_smp_processor_id()</c> at the lookup), or null when
    /// unknown: a socket whose <see cref="Sock.IncomingCpu"/> (SO_INCOMING_CPU) is this CPU scores one more in the
    /// listener lookup (<c>compute_score</c>) and is preferred by a reuseport group's hash
    /// (<c>reuseport_select_sock_by_hash</c>). Unknown matches no socket.
    /// </summary>
    public int? Cpu { get; init; }

    /// <summary>The packet's address family (that of its destination).</summary>
    public SocketFamily Family => To.Family;

    /// <summary>A deterministic 32-bit hash of the 4-tuple (the runtime's <c>inet_ehashfn</c>).</summary>
    public uint Hash()
    {
        ulong h = 0x9e3779b97f4a7c15UL;
        h = Mix(h, To.Address.High);
        h = Mix(h, To.Address.Low);
        h = Mix(h, From.Address.High);
        h = Mix(h, From.Address.Low);
        h = Mix(h, ((ulong)To.Port << 16) | From.Port);
        return (uint)(h ^ (h >> 32));
    }

    static ulong Mix(ulong h, ulong v)
    {
        h ^= v + 0x9e3779b97f4a7c15UL + (h << 6) + (h >> 2);
        h *= 0xff51afd7ed558ccdUL;
        return h ^ (h >> 33);
    }

    /// <summary><c>tcp 127.0.0.2:8008 -&gt; 127.0.0.1:7007</c>.</summary>
    public override string ToString() => $"{(Protocol == SocketProtocol.Tcp ? "tcp" : "udp")} {From} -> {To}";
}
