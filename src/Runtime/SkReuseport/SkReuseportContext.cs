using System.Buffers.Binary;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkReuseport;

/// <summary>
/// Offsets of the SK_REUSEPORT context block: the 56-byte UAPI <c>struct sk_reuseport_md</c> (Linux 6.18), laid out so
/// that a plain little-endian load of a full field gives the kernel's value (<c>sk_reuseport_convert_ctx_access</c>),
/// then runtime-only state the helpers reach from the ctx pointer and programs never see (the kernel's
/// <c>struct sk_reuseport_kern</c>).
/// </summary>
public static class SkReuseportLayout
{
    /// <summary>Size of the UAPI struct.</summary>
    public const int Size = 56;
    /// <summary>Size of the native block (UAPI struct plus hidden state).</summary>
    public const int BlockSize = 128;

    /// <summary><c>data</c>: the packet's transport header (a pointer, 8 bytes).</summary>
    public const int Data = 0;
    /// <summary><c>data_end</c>: the end of the packet's linear bytes (a pointer).</summary>
    public const int DataEnd = 8;
    /// <summary><c>len</c>: the packet's length from the transport header on (u32).</summary>
    public const int Len = 16;
    /// <summary><c>eth_protocol</c>: <c>skb-&gt;protocol</c>, a <c>__be16</c> in a u32 (ETH_P_IP reads 0x0008).</summary>
    public const int EthProtocol = 20;
    /// <summary><c>ip_protocol</c>: the group socket's <c>sk_protocol</c>, u16 in a u32.</summary>
    public const int IpProtocol = 24;
    /// <summary><c>bind_inany</c>: the group is bound to the wildcard address (a bool in a u32).</summary>
    public const int BindInany = 28;
    /// <summary><c>hash</c>: the 4-tuple hash the group would select by (u32).</summary>
    public const int Hash = 32;
    /// <summary><c>sk</c>: the group's socket the lookup found (a <c>struct bpf_sock</c> pointer).</summary>
    public const int Sk = 40;
    /// <summary><c>migrating_sk</c>: the socket being migrated, NULL when selecting for a new packet.</summary>
    public const int MigratingSk = 48;

    /// <summary>Hidden: the socket <c>bpf_sk_select_reuseport</c> selected (pointer, 0: none).</summary>
    public const int SelectedSk = 56;
    /// <summary>Hidden: the id of the group the program runs for (u32, <c>reuseport_id</c>).</summary>
    public const int ReuseportId = 64;
    /// <summary>Hidden: the packet's MAC header (pointer), for <c>BPF_HDR_START_MAC</c>.</summary>
    public const int MacHeader = 72;
    /// <summary>Hidden: the packet's network header (pointer), for <c>BPF_HDR_START_NET</c>.</summary>
    public const int NetworkHeader = 80;

    // Hidden copies of the UAPI fields the helpers follow (the kernel's skb and sk, which a program cannot write): an
    // unverified program may store into its context block, and a helper that followed the stored data, data_end, len or
    // sk would read wherever it pointed (docs/reliability.md, "Helper arguments").

    /// <summary>Hidden: <c>data</c> as filled (pointer).</summary>
    public const int KernData = 88;
    /// <summary>Hidden: <c>data_end</c> as filled (pointer).</summary>
    public const int KernDataEnd = 96;
    /// <summary>Hidden: <c>len</c> as filled (u32).</summary>
    public const int KernLen = 104;
    /// <summary>Hidden: <c>sk</c> as filled (pointer).</summary>
    public const int KernSk = 112;

    /// <summary>
    /// What a verified load of <paramref name="size"/> bytes at UAPI offset <paramref name="offset"/> reads in the
    /// block, as <c>sk_reuseport_convert_ctx_access</c> and the verifier's narrow-load rewrite answer it: (offset,
    /// bytes), bytes 0 meaning the constant 0. eth_protocol (the skb's __be16) and ip_protocol (the socket's u16) are
    /// 16-bit: a 4-byte load reads 2 bytes, a 2-byte load at +2 the field again, a byte at +2 or +3 of ip_protocol 0;
    /// bind_inany is the kernel's 1-byte bool, read by every load of the field; len is a u32 whose narrow loads take
    /// the bytes they name; the rest are read whole (the verifier allows no other size).
    /// </summary>
    public static (int Offset, int Width) Fold(int offset, int size) => offset switch
    {
        >= EthProtocol and < IpProtocol => (EthProtocol, 2),
        >= IpProtocol and < BindInany => size == 1 ? (offset < IpProtocol + 2 ? (offset, 1) : (0, 0)) : (IpProtocol, 2),
        >= BindInany and < Hash => (BindInany, 1),
        _ => (offset, size),
    };

    /// <summary>SK_DROP.</summary>
    public const uint SkDrop = 0;
    /// <summary>SK_PASS.</summary>
    public const uint SkPass = 1;

    /// <summary>
    /// Where the kernel answers a narrow load from another offset than the one the program wrote, and the offset it
    /// reads instead (plain loads at every other accepted offset already give the kernel's value over this layout):
    /// a 2-byte load at <c>eth_protocol+2</c> or <c>ip_protocol+2</c> reads the 16-bit field itself (the narrow load
    /// is as wide as the kernel field, so no shift is applied), and any narrow load of <c>bind_inany</c> reads the
    /// kernel's 1-byte bool at the field's start.
    /// </summary>
    public static int NarrowLoadOffset(int offset, int size) => (offset, size) switch
    {
        (EthProtocol + 2, 2) => EthProtocol,
        (IpProtocol + 2, 2) => IpProtocol,
        (BindInany + 1 or BindInany + 2 or BindInany + 3, 1) or (BindInany + 2, 2) => BindInany,
        _ => offset,
    };
}

/// <summary>
/// One native context block (<see cref="SkReuseportLayout"/>) and the packet bytes its <c>data</c> points into. A
/// reuseport selection fills it from the group, the socket the lookup found, the packet and the hash; programs receive
/// its address in r1 and read <c>data</c>..<c>data_end</c> directly.
/// <para>
/// The packet as the kernel's skb holds it at the listener lookup: an Ethernet header (zero addresses, the
/// EtherType), the IP header, then the transport header and payload, where <c>data</c> points. The caller gives the
/// bytes from the transport header on (<see cref="Packet.Bytes"/>); without them a minimal header is built from the
/// 4-tuple (TCP: a 20-byte SYN; UDP: an 8-byte header). The IP header is always built from the 4-tuple (IPv4:
/// 20 bytes, TTL 64, DF; IPv6: 40 bytes, hop limit 64).
/// </para>
/// </summary>
public sealed unsafe class SkReuseportContext : IDisposable
{
    /// <summary>Bytes before the transport header: an Ethernet header and room for an IPv6 header.</summary>
    const int Headroom = EthHeader + 40;
    const int EthHeader = 14;

    byte* _block;
    byte* _packet;
    int _capacity;
    byte* _closingSk;   // ctx->sk at a final-ACK migration: the closed listener's view, allocated at the first one
    byte* _migrating;   // the bpf_sock view of a migrating request (ctx->migrating_sk), allocated at the first migration

    /// <summary>Allocates a zeroed block and a packet buffer.</summary>
    public SkReuseportContext()
    {
        _block = Maps.Native.Alloc(SkReuseportLayout.BlockSize, 64);
        new Span<byte>(_block, SkReuseportLayout.BlockSize).Clear();
        Checked.MemoryRegions.Register((ulong)_block, SkReuseportLayout.Size, Checked.MemoryRegionKind.Context);
        Grow(Headroom + 256);
    }

    /// <summary>Frees the memory if <see cref="Dispose"/> was not called.</summary>
    ~SkReuseportContext() => Free();

    /// <summary>The address programs receive in r1.</summary>
    public nint Address => (nint)_block;

    /// <summary>The 56 bytes programs see.</summary>
    public Span<byte> Visible => new(_block, SkReuseportLayout.Size);

    /// <summary>The socket <c>bpf_sk_select_reuseport</c> selected in the last run, 0 when none.</summary>
    public nint SelectedSocket
    {
        get => *(nint*)(_block + SkReuseportLayout.SelectedSk);
        set => *(nint*)(_block + SkReuseportLayout.SelectedSk) = value;
    }

    /// <summary>The packet bytes from the transport header on, as the program sees them between data and data_end.</summary>
    public ReadOnlySpan<byte> Data => new((void*)*(nint*)(_block + SkReuseportLayout.KernData), (int)*(uint*)(_block + SkReuseportLayout.KernLen));

    void Grow(int needed)
    {
        if (_packet != null && needed <= _capacity) return;
        int capacity = Math.Max(needed, _capacity * 2);
        var next = Maps.Native.Alloc((nuint)capacity, 64);
        if (_packet != null) Free(_packet);
        _packet = next;
        _capacity = capacity;
        // Programs reach the bytes from data on (the verifier bounds them by data_end); the headers before are the helpers'.
        Checked.MemoryRegions.Register((ulong)(_packet + Headroom), capacity - Headroom, Checked.MemoryRegionKind.Packet);
    }

    /// <summary>
    /// Fills the block as <c>bpf_init_reuseport_kern</c> does for a selection in <paramref name="group"/>:
    /// <paramref name="sk"/> is the member the lookup found (ctx-&gt;sk, whose protocol is ip_protocol),
    /// <paramref name="hash"/> the 4-tuple hash, migrating_sk NULL, no selection yet.
    /// </summary>
    public void Fill(ReuseportGroup group, Sock sk, in Packet packet, uint hash)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(sk);
        Fill(group.Id, group.BindInany, sk.Handle, (ushort)sk.Protocol, packet, hash);
    }

    /// <summary>
    /// Fills the block from its parts (a test run's input): the group id, bind_inany, the ctx-&gt;sk block (0 allowed
    /// only where no program reads it), ip_protocol, the packet and the hash.
    /// </summary>
    public void Fill(uint reuseportId, bool bindInany, nint sk, ushort ipProtocol, in Packet packet, uint hash)
    {
        scoped ReadOnlySpan<byte> transport = packet.Bytes.Span;
        Span<byte> built = stackalloc byte[20];
        if (transport.IsEmpty)
        {
            BuildTransport(packet, built);
            transport = packet.Protocol == SocketProtocol.Udp ? built[..8] : built;
        }
        Grow(Headroom + transport.Length);
        bool v4 = packet.Family == SocketFamily.Inet;
        int ipLength = v4 ? 20 : 40;
        byte* data = _packet + Headroom;
        byte* net = data - ipLength;
        byte* mac = net - EthHeader;
        transport.CopyTo(new Span<byte>(data, transport.Length));
        WriteEthernet(new Span<byte>(mac, EthHeader), v4);
        if (v4) WriteIp4(new Span<byte>(net, 20), packet, transport.Length);
        else WriteIp6(new Span<byte>(net, 40), packet, transport.Length);

        byte* b = _block;
        new Span<byte>(b, SkReuseportLayout.BlockSize).Clear();
        *(ulong*)(b + SkReuseportLayout.Data) = (ulong)data;
        *(ulong*)(b + SkReuseportLayout.DataEnd) = (ulong)(data + transport.Length);
        *(uint*)(b + SkReuseportLayout.Len) = (uint)transport.Length;
        // skb->protocol is big-endian in memory: ETH_P_IP's bytes 08 00 read as 0x0008 by a little-endian load.
        *(ushort*)(b + SkReuseportLayout.EthProtocol) = BinaryPrimitives.ReverseEndianness(v4 ? EthPIp : EthPIpv6);
        *(uint*)(b + SkReuseportLayout.IpProtocol) = ipProtocol;
        *(uint*)(b + SkReuseportLayout.BindInany) = bindInany ? 1u : 0u;
        *(uint*)(b + SkReuseportLayout.Hash) = hash;
        *(ulong*)(b + SkReuseportLayout.Sk) = (ulong)sk;
        *(uint*)(b + SkReuseportLayout.ReuseportId) = reuseportId;
        *(ulong*)(b + SkReuseportLayout.MacHeader) = (ulong)mac;
        *(ulong*)(b + SkReuseportLayout.NetworkHeader) = (ulong)net;
        KeepKernelFields(b);
    }

    // The hidden copies of data, data_end, len and sk the helpers read (SkReuseportLayout.KernData).
    static void KeepKernelFields(byte* b)
    {
        *(ulong*)(b + SkReuseportLayout.KernData) = *(ulong*)(b + SkReuseportLayout.Data);
        *(ulong*)(b + SkReuseportLayout.KernDataEnd) = *(ulong*)(b + SkReuseportLayout.DataEnd);
        *(uint*)(b + SkReuseportLayout.KernLen) = *(uint*)(b + SkReuseportLayout.Len);
        *(ulong*)(b + SkReuseportLayout.KernSk) = *(ulong*)(b + SkReuseportLayout.Sk);
    }

    /// <summary>
    /// Fills the block as <c>bpf_init_reuseport_kern</c> does in <c>reuseport_migrate_sock</c>: <paramref name="closing"/>
    /// (the listener that closes) as <c>sk</c>, <paramref name="request"/> as <c>migrating_sk</c> (a <c>bpf_sock</c> view
    /// of the connection: its 4-tuple, TCP_ESTABLISHED or TCP_NEW_SYN_RECV, a fresh cookie), its hash, and the zero-length
    /// skb the kernel allocates: <c>data</c> = <c>data_end</c>, <c>len</c> and <c>eth_protocol</c> 0, no MAC header.
    /// </summary>
    public void FillMigration(ReuseportGroup group, Sock closing, in MigratingRequest request)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(closing);
        if (_migrating == null)
        {
            _migrating = Maps.Native.Alloc(BpfSockLayout.BlockSize, 64);
            Checked.MemoryRegions.Register((ulong)_migrating, BpfSockLayout.ViewSize, Checked.MemoryRegionKind.Socket);
        }
        WriteRequest(_migrating, closing.Family, request);
        byte* b = _block;
        byte* data = _packet + Headroom;
        new Span<byte>(b, SkReuseportLayout.BlockSize).Clear();
        *(ulong*)(b + SkReuseportLayout.Data) = (ulong)data;
        *(ulong*)(b + SkReuseportLayout.DataEnd) = (ulong)data;
        *(uint*)(b + SkReuseportLayout.IpProtocol) = (ushort)closing.Protocol;
        *(uint*)(b + SkReuseportLayout.BindInany) = group.BindInany ? 1u : 0u;
        *(uint*)(b + SkReuseportLayout.Hash) = request.Hash;
        *(ulong*)(b + SkReuseportLayout.Sk) = (ulong)closing.Handle;
        *(ulong*)(b + SkReuseportLayout.MigratingSk) = (ulong)_migrating;
        *(uint*)(b + SkReuseportLayout.ReuseportId) = group.Id;
        *(ulong*)(b + SkReuseportLayout.NetworkHeader) = (ulong)data;
        KeepKernelFields(b);
    }

    /// <summary>
    /// Fills the block as <c>bpf_init_reuseport_kern</c> does when <c>tcp_v4_rcv</c> / <c>tcp_v6_rcv</c> migrate a request at
    /// the handshake's final ACK: <paramref name="closing"/> (the request's listener, closed meanwhile) as <c>sk</c>,
    /// <paramref name="request"/> as <c>migrating_sk</c> and its hash as <c>hash</c>, and <paramref name="ack"/> as the
    /// packet, as for a lookup (<c>data</c> at its TCP header, <c>len</c>, <c>eth_protocol</c>, the network and MAC
    /// headers); an ACK given without bytes reads as a bare 20-byte ACK header of its 4-tuple.
    /// </summary>
    public void FillMigration(ReuseportGroup group, Sock closing, in MigratingRequest request, in Packet ack)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(closing);
        var packet = ack;
        if (packet.Bytes.IsEmpty)
        {
            var built = new byte[20];
            BuildTransport(packet, built);
            built[13] = 0x10;   // ACK, not the SYN a lookup's stand-in header carries
            packet = packet with { Bytes = built };
        }
        // The listener's block was freed at its close: ctx->sk reads the view it had then, in a block of this context.
        var view = closing.ClosedView;
        if (view.IsEmpty) throw new ArgumentException($"socket {closing}: not a closed listener of a reuseport group", nameof(closing));
        if (_closingSk == null)
        {
            _closingSk = Maps.Native.Alloc(BpfSockLayout.BlockSize, 64);
            Checked.MemoryRegions.Register((ulong)_closingSk, BpfSockLayout.ViewSize, Checked.MemoryRegionKind.Socket);
        }
        view.CopyTo(new Span<byte>(_closingSk, BpfSockLayout.BlockSize));
        // No magic and no owner: helpers never take it for a live Sock (the cookie still reads).
        *(uint*)(_closingSk + BpfSockLayout.Magic) = 0;
        *(nint*)(_closingSk + BpfSockLayout.Owner) = 0;
        Fill(group.Id, group.BindInany, (nint)_closingSk, (ushort)closing.Protocol, packet, request.Hash);
        if (_migrating == null)
        {
            _migrating = Maps.Native.Alloc(BpfSockLayout.BlockSize, 64);
            Checked.MemoryRegions.Register((ulong)_migrating, BpfSockLayout.ViewSize, Checked.MemoryRegionKind.Socket);
        }
        WriteRequest(_migrating, closing.Family, request);
        *(ulong*)(_block + SkReuseportLayout.MigratingSk) = (ulong)_migrating;
    }

    // A bpf_sock view of a connection that is not a Sock (no magic: helpers never take it for one).
    static void WriteRequest(byte* v, SocketFamily family, in MigratingRequest r)
    {
        new Span<byte>(v, BpfSockLayout.BlockSize).Clear();
        // A request (TCP_NEW_SYN_RECV) is made by the protocol its SYN came in on: tcp_v6_conn_request hands an IPv4
        // SYN to tcp_v4_conn_request, so on a dual-stack AF_INET6 listener it is AF_INET. An established child is a
        // clone of its listener (inet_csk_clone_lock) and keeps the listener's family.
        if (!r.Established && r.Local.Family == SocketFamily.Inet) family = SocketFamily.Inet;
        *(uint*)(v + BpfSockLayout.Family) = (uint)family;
        *(uint*)(v + BpfSockLayout.Type) = BpfSockLayout.SockStream;
        *(uint*)(v + BpfSockLayout.Protocol) = (uint)SocketProtocol.Tcp;
        if (family == SocketFamily.Inet)
        {
            *(uint*)(v + BpfSockLayout.SrcIp4) = r.Local.Address.Ip4Raw;
            *(uint*)(v + BpfSockLayout.DstIp4) = r.Remote.Address.Ip4Raw;
        }
        else
        {
            r.Local.Address.WriteBytes(new Span<byte>(v + BpfSockLayout.SrcIp6, 16));
            r.Remote.Address.WriteBytes(new Span<byte>(v + BpfSockLayout.DstIp6, 16));
        }
        *(uint*)(v + BpfSockLayout.SrcPort) = r.Local.Port;
        *(uint*)(v + BpfSockLayout.DstPort) = BinaryPrimitives.ReverseEndianness(r.Remote.Port);
        *(uint*)(v + BpfSockLayout.State) = r.Established ? BpfSockLayout.TcpEstablished : TcpNewSynRecv;
        *(int*)(v + BpfSockLayout.RxQueueMapping) = -1;
        *(ulong*)(v + BpfSockLayout.Cookie) = Sock.NewCookie();
    }

    const uint TcpNewSynRecv = 12;

    const ushort EthPIp = 0x0800, EthPIpv6 = 0x86dd;

    /// <summary>A TCP SYN (20 bytes) or a UDP header (8 bytes) for the 4-tuple, when the caller gave no bytes.</summary>
    internal static void BuildTransport(in Packet p, Span<byte> buffer)
    {
        buffer.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(buffer, p.From.Port);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], p.To.Port);
        if (p.Protocol == SocketProtocol.Udp)
        {
            BinaryPrimitives.WriteUInt16BigEndian(buffer[4..], 8);
            return;
        }
        buffer[12] = 5 << 4;        // data offset: 5 words
        buffer[13] = 0x02;          // SYN
        BinaryPrimitives.WriteUInt16BigEndian(buffer[14..], 65535);
    }

    internal static void WriteEthernet(Span<byte> h, bool v4)
    {
        h.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(h[12..], v4 ? EthPIp : EthPIpv6);
    }

    internal static void WriteIp4(Span<byte> h, in Packet p, int transportLength)
    {
        h.Clear();
        h[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], (ushort)(20 + transportLength));
        BinaryPrimitives.WriteUInt16BigEndian(h[6..], 0x4000);   // DF
        h[8] = 64;
        h[9] = (byte)p.Protocol;
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], p.From.Address.Ip4Raw);
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], p.To.Address.Ip4Raw);
        uint sum = 0;
        for (int i = 0; i < 20; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(h[i..]);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(h[10..], (ushort)~sum);
    }

    internal static void WriteIp6(Span<byte> h, in Packet p, int transportLength)
    {
        h.Clear();
        h[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(h[4..], (ushort)transportLength);
        h[6] = (byte)p.Protocol;
        h[7] = 64;
        p.From.Address.WriteBytes(h.Slice(8, 16));
        p.To.Address.WriteBytes(h.Slice(24, 16));
    }

    static void Free(byte* packet)
    {
        Checked.MemoryRegions.Unregister((ulong)(packet + Headroom));
        Maps.Native.Free(packet);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    void Free()
    {
        if (_block == null) return;
        Checked.MemoryRegions.Unregister((ulong)_block);
        Maps.Native.Free(_block);
        Free(_packet);
        if (_closingSk != null)
        {
            Checked.MemoryRegions.Unregister((ulong)_closingSk);
            Maps.Native.Free(_closingSk);
        }
        _closingSk = null;
        if (_migrating != null)
        {
            Checked.MemoryRegions.Unregister((ulong)_migrating);
            Maps.Native.Free(_migrating);
        }
        _block = null;
        _packet = null;
        _migrating = null;
    }
}
