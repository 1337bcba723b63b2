using System.Buffers.Binary;

namespace BpfJit.Runtime.SkReuseport;

/// <summary>
/// Runs a checked classic program: A, X, M[16], all 32-bit. The check guarantees every jump lands forward inside the
/// program and the last instruction returns, so the loop always ends at a RET.
/// </summary>
static class ClassicInterpreter
{
    public static uint Run(SockFilter[] code, in ClassicSkb skb)
    {
        uint a = 0, x = 0;
        Span<uint> m = stackalloc uint[ClassicFilter.MemoryWords];
        m.Clear();
        for (int pc = 0; ; pc++)
        {
            var i = code[pc];
            uint k = i.K;
            switch (i.Code)
            {
                case Cbpf.Ret | Cbpf.K: return k;
                case Cbpf.Ret | Cbpf.A: return a;

                case Cbpf.Ld | Cbpf.W | Cbpf.Abs:
                case Cbpf.Ld | Cbpf.H | Cbpf.Abs:
                case Cbpf.Ld | Cbpf.B | Cbpf.Abs:
                    if (Cbpf.IsAncillary(i))
                    {
                        a = Ancillary(k - unchecked((uint)Cbpf.AdOff), a, x, skb);
                        break;
                    }
                    if (!Load(skb, unchecked((int)k), Size(i.Code), out a)) return 0;
                    break;
                case Cbpf.Ld | Cbpf.W | Cbpf.Ind:
                case Cbpf.Ld | Cbpf.H | Cbpf.Ind:
                case Cbpf.Ld | Cbpf.B | Cbpf.Ind:
                    if (!Load(skb, unchecked((int)(x + k)), Size(i.Code), out a)) return 0;
                    break;
                case Cbpf.Ldx | Cbpf.B | Cbpf.Msh:
                    if (!Load(skb, unchecked((int)k), 1, out x)) return 0;
                    x = (x & 0xf) << 2;
                    break;
                case Cbpf.Ld | Cbpf.W | Cbpf.Len: a = (uint)skb.Length; break;
                case Cbpf.Ldx | Cbpf.W | Cbpf.Len: x = (uint)skb.Length; break;
                case Cbpf.Ld | Cbpf.Imm: a = k; break;
                case Cbpf.Ldx | Cbpf.Imm: x = k; break;
                case Cbpf.Ld | Cbpf.Mem: a = m[(int)k]; break;
                case Cbpf.Ldx | Cbpf.Mem: x = m[(int)k]; break;
                case Cbpf.St: m[(int)k] = a; break;
                case Cbpf.Stx: m[(int)k] = x; break;
                case Cbpf.Misc | Cbpf.Tax: x = a; break;
                case Cbpf.Misc | Cbpf.Txa: a = x; break;

                case Cbpf.Alu | Cbpf.Neg: a = unchecked(0u - a); break;
                case Cbpf.Alu | Cbpf.Div | Cbpf.X:
                case Cbpf.Alu | Cbpf.Mod | Cbpf.X:
                    if (x == 0) return 0;       // classic BPF ends the program with 0 on a division by zero
                    a = (i.Code & 0xf0) == Cbpf.Div ? a / x : a % x;
                    break;
                case var alu when (alu & 0x07) == Cbpf.Alu:
                    a = Alu(alu, a, (alu & Cbpf.X) != 0 ? x : k);
                    break;

                case Cbpf.Jmp | Cbpf.Ja: pc += (int)k; break;
                default:
                    {
                        uint src = (i.Code & Cbpf.X) != 0 ? x : k;
                        bool taken = (i.Code & 0xf0) switch
                        {
                            Cbpf.Jeq => a == src,
                            Cbpf.Jgt => a > src,
                            Cbpf.Jge => a >= src,
                            _ => (a & src) != 0,     // Jset: the check admits no other jump
                        };
                        pc += taken ? i.Jt : i.Jf;
                        break;
                    }
            }
        }
    }

    static uint Alu(ushort code, uint a, uint src) => (code & 0xf0) switch
    {
        Cbpf.Add => unchecked(a + src),
        Cbpf.Sub => unchecked(a - src),
        Cbpf.Mul => unchecked(a * src),
        Cbpf.Div => a / src,                // K: never 0 (checked)
        Cbpf.Mod => a % src,
        Cbpf.And => a & src,
        Cbpf.Or => a | src,
        Cbpf.Xor => a ^ src,
        Cbpf.Lsh => a << (int)(src & 31),   // by X: the eBPF the kernel runs masks the count
        _ => a >> (int)(src & 31),          // Rsh
    };

    static int Size(ushort code) => (code & 0x18) switch { Cbpf.W => 4, Cbpf.H => 2, _ => 1 };

    // bpf_skb_load_helper: offsets from the (pulled) data, or, negative, from the network header (SKF_NET_OFF) or the MAC
    // header (SKF_LL_OFF); the bytes must lie inside the frame. Big-endian, as classic loads are.
    static bool Load(in ClassicSkb skb, int offset, int size, out uint value)
    {
        long at;
        if (offset >= 0) at = (long)skb.Data + offset;
        else if (offset >= Cbpf.NetOff) at = (long)skb.Network + (offset - Cbpf.NetOff);
        else if (offset >= Cbpf.LlOff) at = offset - Cbpf.LlOff;
        else
        {
            value = 0;
            return false;
        }
        if (at + size > skb.Frame.Length)
        {
            value = 0;
            return false;
        }
        var p = skb.Frame.Slice((int)at, size);
        value = size switch { 4 => BinaryPrimitives.ReadUInt32BigEndian(p), 2 => BinaryPrimitives.ReadUInt16BigEndian(p), _ => p[0] };
        return true;
    }

    // The ancillary loads (convert_bpf_extensions), whatever the load's size, with their values at a reuseport selection.
    static uint Ancillary(uint field, uint a, uint x, in ClassicSkb skb) => field switch
    {
        Cbpf.AdProtocol => skb.V4 ? 0x0800u : 0x86ddu,             // ntohs(skb->protocol)
        Cbpf.AdIfindex => (uint)skb.Ifindex,
        Cbpf.AdHatype => skb.Ifindex == 1 ? 772u : 1u,              // dev->type: ARPHRD_LOOPBACK for lo (ifindex 1), else ARPHRD_ETHER
        Cbpf.AdRxhash => skb.Tcp ? skb.Hash : 0,                    // a loopback UDP packet carries no skb->hash
        Cbpf.AdCpu => (uint)Thread.GetCurrentProcessorId(),
        Cbpf.AdAluXorX => a ^ x,
        Cbpf.AdPayOffset => skb.Tcp ? 0u : (uint)(skb.Length + 8),    // as Linux 6.18 answers here (measured: see docs)
        Cbpf.AdRandom => (uint)Random.Shared.Next() ^ ((uint)Random.Shared.Next() << 1),
        Cbpf.AdNlattr => Nlattr(skb, a, x, nested: false),
        Cbpf.AdNlattrNest => Nlattr(skb, a, x, nested: true),
        _ => 0,     // pkttype PACKET_HOST, mark, queue_mapping, VLAN tag/present/TPID: all 0 on a received untagged packet
    };

    // __skb_get_nlattr / __skb_get_nlattr_nest: the offset from data of the attribute of type X in the attributes at A
    // (for _NEST, inside the attribute at A), 0 when none.
    static uint Nlattr(in ClassicSkb skb, uint a, uint x, bool nested)
    {
        var data = skb.Frame[skb.Data..];
        if (data.Length < 4 || a > (uint)(data.Length - 4)) return 0;
        int start = (int)a, length = data.Length - start;
        if (nested)
        {
            int own = BinaryPrimitives.ReadUInt16LittleEndian(data[start..]);
            if (own < 4 || own > length) return 0;
            start += 4;
            length = own - 4;
        }
        while (length >= 4)
        {
            int len = BinaryPrimitives.ReadUInt16LittleEndian(data[start..]);
            if (len < 4 || len > length) return 0;
            if ((BinaryPrimitives.ReadUInt16LittleEndian(data[(start + 2)..]) & 0x3fff) == x) return (uint)start;
            int total = (len + 3) & ~3;
            start += total;
            length -= total;
        }
        return 0;
    }
}
