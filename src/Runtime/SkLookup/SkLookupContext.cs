using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkLookup;

/// <summary>
/// Offsets of the program context block: the 72-byte UAPI <c>struct bpf_sk_lookup</c>, laid out
/// so that plain little-endian loads give the kernel's answers (section 1.2 of the spec), then
/// runtime-only state that helpers reach from the ctx pointer and programs never see.
/// </summary>
public static class SkLookupLayout
{
    /// <summary>
    /// What a <paramref name="size"/>-byte load at UAPI offset <paramref name="offset"/> reads in the
    /// context block: (offset, bytes), bytes 0 meaning the value is the constant 0. A narrower read than
    /// the access zero-extends; sign extension then changes nothing, as in the kernel (its MOVSX from the
    /// access width sees a value whose top bit is clear).
    /// </summary>
    public static (int Offset, int Width) Fold(int offset, int size)
    {
        bool shortField = offset is >= Family and < Family + 4
            or >= Protocol and < Protocol + 4
            or >= LocalPort and < LocalPort + 4;
        if (shortField)
        {
            int field = offset & ~3, k = offset - field;
            return size switch
            {
                4 or 2 => (field, 2),          // the u16; 2 bytes at +2 is the kernel quirk (the field again)
                _ => k < 2 ? (offset, 1) : (0, 0),
            };
        }
        if (offset == RemotePort) return (offset, Math.Min(size, 2));
        if (offset is Pad or Pad + 1) return (0, 0);
        return (offset, size);
    }

    /// <summary>Size of the UAPI struct.</summary>
    public const int Size = 72;
    /// <summary>Size of the native block (UAPI struct plus hidden state).</summary>
    public const int BlockSize = 128;

    /// <summary><c>sk</c> / <c>cookie</c>: the selected socket pointer (8 bytes).</summary>
    public const int Sk = 0;
    /// <summary><c>family</c>: u16 value in a u32.</summary>
    public const int Family = 8;
    /// <summary><c>protocol</c>: u16 value in a u32.</summary>
    public const int Protocol = 12;
    /// <summary><c>remote_ip4</c>, network order.</summary>
    public const int RemoteIp4 = 16;
    /// <summary><c>remote_ip6[4]</c>, network order.</summary>
    public const int RemoteIp6 = 20;
    /// <summary><c>remote_port</c>, <c>__be16</c>.</summary>
    public const int RemotePort = 36;
    /// <summary>Two bytes of zero padding after remote_port.</summary>
    public const int Pad = 38;
    /// <summary><c>local_ip4</c>, network order.</summary>
    public const int LocalIp4 = 40;
    /// <summary><c>local_ip6[4]</c>, network order.</summary>
    public const int LocalIp6 = 44;
    /// <summary><c>local_port</c>, host order (u16 value in a u32).</summary>
    public const int LocalPort = 60;
    /// <summary><c>ingress_ifindex</c>.</summary>
    public const int IngressIfindex = 64;

    /// <summary>Hidden: the kernel's <c>no_reuseport</c> (u32, 0 or 1).</summary>
    public const int NoReuseport = 72;

    /// <summary>
    /// Hidden: the kernel's <c>selected_sk</c> (u64), the socket bpf_sk_assign (or the hook, between programs) selected. The
    /// visible <see cref="Sk"/> mirrors it for programs to read; the verdict is taken from here, so that a store an
    /// unverified program makes to <c>ctx-&gt;sk</c> (which the kernel's verifier refuses) selects nothing and hands the host
    /// no address to follow.
    /// </summary>
    public const int SelectedSk = 80;

    /// <summary>SK_DROP.</summary>
    public const uint SkDrop = 0;
    /// <summary>SK_PASS.</summary>
    public const uint SkPass = 1;
    /// <summary>BPF_SK_LOOKUP_F_REPLACE.</summary>
    public const ulong FlagReplace = 1;
    /// <summary>BPF_SK_LOOKUP_F_NO_REUSEPORT.</summary>
    public const ulong FlagNoReuseport = 2;
}

/// <summary>
/// One native context block (see <see cref="SkLookupLayout"/>). A lookup fills it from a packet,
/// programs receive its address in r1, helpers read and write it through that address.
/// </summary>
public sealed unsafe class SkLookupContext : IDisposable
{
    byte* _block;

    /// <summary>Allocates a zeroed block.</summary>
    public SkLookupContext()
    {
        // Whole cache lines: each lookup thread writes its own block, and no other allocation (another
        // thread's block) shares a line with it.
        _block = Maps.Native.Alloc(SkLookupLayout.BlockSize, 64);
        Checked.MemoryRegions.Register((ulong)_block, SkLookupLayout.Size, Checked.MemoryRegionKind.Context);
        Clear();
    }

    /// <summary>Frees the block if <see cref="Dispose"/> was not called.</summary>
    ~SkLookupContext() => Free();

    /// <summary>The address programs receive in r1.</summary>
    public nint Address => (nint)_block;

    /// <summary>The 72 bytes programs see.</summary>
    public Span<byte> Visible => new(_block, SkLookupLayout.Size);

    /// <summary>
    /// The selected socket pointer, 0 when none: what bpf_sk_assign last selected (<see cref="SkLookupLayout.SelectedSk"/>),
    /// never what a program stored in <c>ctx-&gt;sk</c>. Setting it sets both.
    /// </summary>
    public nint SelectedSocket
    {
        get => *(nint*)(_block + SkLookupLayout.SelectedSk);
        set
        {
            *(nint*)(_block + SkLookupLayout.Sk) = value;
            *(nint*)(_block + SkLookupLayout.SelectedSk) = value;
        }
    }

    /// <summary>The hidden no_reuseport flag set by sk_assign.</summary>
    public bool NoReuseport
    {
        get => *(uint*)(_block + SkLookupLayout.NoReuseport) != 0;
        set => *(uint*)(_block + SkLookupLayout.NoReuseport) = value ? 1u : 0u;
    }

    /// <summary>Zeroes the whole block.</summary>
    public void Clear() => new Span<byte>(_block, SkLookupLayout.BlockSize).Clear();

    /// <summary>
    /// Fills the block for <paramref name="packet"/> as <c>bpf_sk_lookup_run_v4/v6</c> do: the
    /// other family's address fields stay 0, remote_port in network order, local_port in host order.
    /// </summary>
    public void Fill(in Packet packet)
    {
        byte* b = _block;
        // Only the part programs and helpers read (the UAPI struct and no_reuseport) is rewritten per lookup;
        // the rest of the block stays zero from construction.
        Unsafe.InitBlockUnaligned(b, 0, LiveBytes);
        *(uint*)(b + SkLookupLayout.Family) = (ushort)packet.Family;
        *(uint*)(b + SkLookupLayout.Protocol) = (ushort)packet.Protocol;
        if (packet.Family == SocketFamily.Inet)
        {
            *(uint*)(b + SkLookupLayout.RemoteIp4) = packet.From.Address.Ip4Raw;
            *(uint*)(b + SkLookupLayout.LocalIp4) = packet.To.Address.Ip4Raw;
        }
        else
        {
            packet.From.Address.WriteBytes(new Span<byte>(b + SkLookupLayout.RemoteIp6, 16));
            packet.To.Address.WriteBytes(new Span<byte>(b + SkLookupLayout.LocalIp6, 16));
        }
        *(ushort*)(b + SkLookupLayout.RemotePort) = BinaryPrimitives.ReverseEndianness(packet.From.Port);
        *(uint*)(b + SkLookupLayout.LocalPort) = packet.To.Port;
        *(uint*)(b + SkLookupLayout.IngressIfindex) = (uint)packet.IngressIfindex;
    }

    // The bytes Fill rewrites: the 72-byte UAPI struct and the hidden no_reuseport and selected_sk words, rounded to 16.
    const uint LiveBytes = 96;

    /// <summary>
    /// Fills the block from a test run's validated user context, as
    /// <c>bpf_prog_test_run_sk_lookup</c> builds its kernel context: family, protocol and local_port
    /// truncated to 16 bits, the other family's fields and the padding left 0, ingress_ifindex 0.
    /// </summary>
    public void FillFromUser(ReadOnlySpan<byte> user)
    {
        Clear();
        ushort family = (ushort)BinaryPrimitives.ReadUInt32LittleEndian(user[SkLookupLayout.Family..]);
        Write32(SkLookupLayout.Family, family);
        Write32(SkLookupLayout.Protocol, (ushort)BinaryPrimitives.ReadUInt32LittleEndian(user[SkLookupLayout.Protocol..]));
        Write32(SkLookupLayout.LocalPort, (ushort)BinaryPrimitives.ReadUInt32LittleEndian(user[SkLookupLayout.LocalPort..]));
        user.Slice(SkLookupLayout.RemotePort, 2).CopyTo(new Span<byte>(_block + SkLookupLayout.RemotePort, 2));
        if (family == (ushort)SocketFamily.Inet)
        {
            user.Slice(SkLookupLayout.RemoteIp4, 4).CopyTo(new Span<byte>(_block + SkLookupLayout.RemoteIp4, 4));
            user.Slice(SkLookupLayout.LocalIp4, 4).CopyTo(new Span<byte>(_block + SkLookupLayout.LocalIp4, 4));
        }
        else
        {
            user.Slice(SkLookupLayout.RemoteIp6, 16).CopyTo(new Span<byte>(_block + SkLookupLayout.RemoteIp6, 16));
            user.Slice(SkLookupLayout.LocalIp6, 16).CopyTo(new Span<byte>(_block + SkLookupLayout.LocalIp6, 16));
        }
    }

    void Write32(int offset, uint value) => *(uint*)(_block + offset) = value;

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
        _block = null;
    }
}
