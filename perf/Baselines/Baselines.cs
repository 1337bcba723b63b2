using System.Runtime.CompilerServices;
using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using L = BpfJit.Runtime.SkLookup.SkLookupLayout;

namespace BpfJit.Baselines;

/// <summary>
/// A hand-written C# version of one SK_LOOKUP program: the same logic against the same runtime
/// objects the eBPF program uses — the same <see cref="BpfMap"/> instances through their public
/// lookup method (<see cref="BpfMap.LookupElem"/>, called on the sealed concrete type), the same
/// 72-byte context block, the same <see cref="SkLookupHelpers.SkAssign"/> and
/// <see cref="SkLookupHelpers.SkRelease"/>. It is the native-speed line the JIT is measured against.
/// </summary>
public abstract unsafe class SkLookupBaseline
{
    /// <summary>The eBPF program this replaces.</summary>
    public abstract string Name { get; }

    /// <summary>Runs on the context block at <paramref name="ctx"/>; returns SK_PASS or SK_DROP like the program.</summary>
    public abstract uint Run(nint ctx);

    /// <summary>A u32 context field.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected static uint U32(nint ctx, int offset) => *(uint*)((byte*)ctx + offset);

    /// <summary>
    /// <c>bpf_sk_assign(ctx, sk, 0)</c> then <c>bpf_sk_release(sk)</c>, as the corpus programs end:
    /// SK_DROP when the assign failed, else SK_PASS.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected static uint AssignAndRelease(nint ctx, ulong sk)
    {
        ulong err = SkLookupHelpers.SkAssign((ulong)ctx, sk, 0, 0, 0);
        SkLookupHelpers.SkRelease(sk, 0, 0, 0, 0);
        return err != 0 ? L.SkDrop : L.SkPass;
    }

    /// <summary>Looks <paramref name="name"/> up in <paramref name="maps"/> as a <typeparamref name="T"/>.</summary>
    protected static T MapOf<T>(IReadOnlyList<BpfMap> maps, string name) where T : BpfMap =>
        maps.FirstOrDefault(m => m.Name == name) as T ?? throw new ArgumentException($"no {typeof(T).Name} named '{name}'");
}

/// <summary>
/// perf/programs/redir_port.c: <c>local_port</c> → index (HASH <c>ports</c>) → socket (SOCKMAP
/// <c>socks</c>) → sk_assign.
/// </summary>
public sealed unsafe class RedirPortBaseline(HashMap ports, SockMap socks, string name = "redir_port") : SkLookupBaseline
{
    /// <summary>Binds to the object's maps <c>ports</c> and <c>socks</c> (or chain.c's names).</summary>
    public RedirPortBaseline(IReadOnlyList<BpfMap> maps, string portsMap = "ports", string socksMap = "socks", string name = "redir_port")
        : this(MapOf<HashMap>(maps, portsMap), MapOf<SockMap>(maps, socksMap), name) { }

    /// <inheritdoc />
    public override string Name => name;

    /// <inheritdoc />
    public override uint Run(nint ctx)
    {
        uint port = U32(ctx, L.LocalPort);
        ulong index = ports.LookupElem((ulong)&port);
        if (index == 0) return L.SkPass;
        ulong sk = socks.LookupElem(index);
        if (sk == 0) return L.SkPass;
        return AssignAndRelease(ctx, sk);
    }
}

/// <summary>tests/programs/redir_ip6.c: [fd00::1]:7007 → <c>redir_map[0]</c>.</summary>
public sealed unsafe class RedirIp6Baseline(SockMap redirMap) : SkLookupBaseline
{
    /// <summary>Binds to the object's map <c>redir_map</c>.</summary>
    public RedirIp6Baseline(IReadOnlyList<BpfMap> maps) : this(MapOf<SockMap>(maps, "redir_map")) { }

    /// <inheritdoc />
    public override string Name => "redir_ip6";

    /// <inheritdoc />
    public override uint Run(nint ctx)
    {
        if (U32(ctx, L.Family) != (uint)SocketFamily.Inet6) return L.SkPass;
        if (U32(ctx, L.LocalPort) != 7007) return L.SkPass;
        // Network-order words read little-endian: fd00:: is 0x000000fd, ::1 is 0x01000000.
        if (U32(ctx, L.LocalIp6) != 0x000000fd || U32(ctx, L.LocalIp6 + 4) != 0
            || U32(ctx, L.LocalIp6 + 8) != 0 || U32(ctx, L.LocalIp6 + 12) != 0x01000000)
            return L.SkPass;
        uint key = 0;
        ulong sk = redirMap.LookupElem((ulong)&key);
        if (sk == 0) return L.SkPass;
        return AssignAndRelease(ctx, sk);
    }
}

/// <summary>The tubular-style dispatcher's LPM key (tests/programs/dispatcher.c, perf/programs/lpm_lookup.c), shared by their baselines.</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Pack = 1)]
internal struct BindingKey
{
    /// <summary>The LPM prefix length (19 × 8 for a full key).</summary>
    public uint PrefixLen;
    /// <summary>The IP protocol.</summary>
    public byte Protocol;
    /// <summary>The local port (host order).</summary>
    public ushort Port;
    /// <summary>The local address, IPv4 as ::ffff:a.b.c.d.</summary>
    public UInt128 Ip;

    /// <summary>The full-length key of a lookup context: its protocol, local port and local address.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe BindingKey FromContext(nint ctx)
    {
        BindingKey key;
        key.PrefixLen = 19 * 8;
        key.Protocol = (byte)Read(ctx, L.Protocol);
        key.Port = (ushort)Read(ctx, L.LocalPort);
        FillAddress(ctx, &key);
        return key;
    }

    /// <summary>Fills <see cref="Ip"/> from the context's family and local address, as the programs do (zero for other families).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void FillAddress(nint ctx, BindingKey* key)
    {
        uint* ip = (uint*)((byte*)key + 7);
        uint family = Read(ctx, L.Family);
        if (family == (uint)SocketFamily.Inet)
        {
            ip[0] = 0; ip[1] = 0; ip[2] = 0xffff0000; ip[3] = Read(ctx, L.LocalIp4);
        }
        else if (family == (uint)SocketFamily.Inet6)
        {
            ip[0] = Read(ctx, L.LocalIp6); ip[1] = Read(ctx, L.LocalIp6 + 4);
            ip[2] = Read(ctx, L.LocalIp6 + 8); ip[3] = Read(ctx, L.LocalIp6 + 12);
        }
        else
        {
            key->Ip = 0;
        }
    }

    static unsafe uint Read(nint ctx, int offset) => *(uint*)((byte*)ctx + offset);
}

/// <summary>
/// tests/programs/dispatcher.c, the tubular-style dispatcher: two LPM_TRIE lookups of
/// (protocol, port, address) — exact port, then port 0 — the longer prefix wins; the binding's id
/// indexes the PERCPU_ARRAY metrics and the SOCKMAP of destinations.
/// </summary>
public sealed unsafe class DispatcherBaseline(LpmTrieMap bindings, PerCpuArrayMap metrics, SockMap sockets) : SkLookupBaseline
{
    /// <summary>Binds to the object's maps <c>bindings</c>, <c>destination_metrics</c> and <c>sockets</c>.</summary>
    public DispatcherBaseline(IReadOnlyList<BpfMap> maps)
        : this(MapOf<LpmTrieMap>(maps, "bindings"), MapOf<PerCpuArrayMap>(maps, "destination_metrics"), MapOf<SockMap>(maps, "sockets")) { }

    /// <inheritdoc />
    public override string Name => "dispatcher";

    /// <inheritdoc />
    public override uint Run(nint ctx)
    {
        var key = BindingKey.FromContext(ctx);
        ulong bind = bindings.LookupElem((ulong)&key);
        key.Port = 0;
        ulong wildcard = bindings.LookupElem((ulong)&key);
        if (bind != 0 && wildcard != 0)
        {
            if (*(uint*)(wildcard + 4) > *(uint*)(bind + 4)) bind = wildcard;
        }
        else if (bind == 0)
        {
            bind = wildcard;
        }
        if (bind == 0) return L.SkPass;
        uint id = *(uint*)bind;
        ulong m = metrics.LookupElem((ulong)&id);
        if (m == 0) return L.SkDrop;
        ((ulong*)m)[0]++;
        ulong sk = sockets.LookupElem((ulong)&id);
        if (sk == 0)
        {
            ((ulong*)m)[1]++;
            return L.SkDrop;
        }
        if (SkLookupHelpers.SkAssign((ulong)ctx, sk, 0, 0, 0) != 0)
        {
            ((ulong*)m)[2]++;
            SkLookupHelpers.SkRelease(sk, 0, 0, 0, 0);
            return L.SkDrop;
        }
        SkLookupHelpers.SkRelease(sk, 0, 0, 0, 0);
        return L.SkPass;
    }
}

/// <summary>
/// perf/programs/lpm_lookup.c: the dispatcher's LPM key, four lookups in <c>bindings</c> (exact port,
/// port 0, exact port with the address's last octet xor 1 and xor 2); SK_PASS when the sum of the found
/// ids is odd, else SK_DROP.
/// </summary>
public sealed unsafe class LpmLookupBaseline(LpmTrieMap bindings) : SkLookupBaseline
{
    /// <summary>Binds to the object's map <c>bindings</c>.</summary>
    public LpmLookupBaseline(IReadOnlyList<BpfMap> maps) : this(MapOf<LpmTrieMap>(maps, "bindings")) { }

    /// <inheritdoc />
    public override string Name => "lpm_lookup";


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    uint IdOf(BindingKey* key)
    {
        ulong bind = bindings.LookupElem((ulong)key);
        return bind == 0 ? 0 : *(uint*)bind;
    }

    /// <inheritdoc />
    public override uint Run(nint ctx)
    {
        var key = BindingKey.FromContext(ctx);
        uint sum = IdOf(&key);
        key.Port = 0;
        sum += IdOf(&key);
        key.Port = (ushort)U32(ctx, L.LocalPort);
        byte* last = (byte*)&key + 7 + 15;
        *last ^= 1;
        sum += IdOf(&key);
        *last ^= 3;
        sum += IdOf(&key);
        return (sum & 1) != 0 ? L.SkPass : L.SkDrop;
    }
}

/// <summary>
/// tests/programs/narrow_ctx.c: every 1-, 2- and 4-byte load of every context field folded into a
/// checksum. Loads follow the kernel's narrow-load semantics: plain little-endian reads of the
/// 72-byte block, except a 2-byte load at family+2, protocol+2 or local_port+2, which returns the
/// 16-bit field itself (what <c>CtxLoadRewriter</c> gives the engines).
/// </summary>
public sealed unsafe class NarrowCtxBaseline : SkLookupBaseline
{
    /// <inheritdoc />
    public override string Name => "narrow_ctx";

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint B(byte* c, int off) => c[off];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint H(byte* c, int off) => *(ushort*)(c + (off is 10 or 14 or 62 ? off - 2 : off));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint W(byte* c, int off) => *(uint*)(c + off);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Field4(byte* c, int off) => unchecked(B(c, off) + B(c, off + 1) * 3 + B(c, off + 2) * 5 + B(c, off + 3) * 7
        + H(c, off) * 11 + H(c, off + 2) * 13 + W(c, off) * 17);

    /// <inheritdoc />
    public override uint Run(nint ctx)
    {
        byte* c = (byte*)ctx;
        unchecked
        {
            ulong sum = 0;
            sum += Field4(c, 8);
            sum ^= Field4(c, 12);
            sum += Field4(c, 16);
            sum ^= Field4(c, 20);
            sum += Field4(c, 24);
            sum ^= Field4(c, 28);
            sum += Field4(c, 32);
            sum ^= B(c, 36) + B(c, 37) * 3 + H(c, 36) * 5 + W(c, 36) * 7 + H(c, 38) * 11 + B(c, 38) * 13 + B(c, 39) * 17;
            sum += Field4(c, 40);
            sum ^= Field4(c, 44);
            sum += Field4(c, 48);
            sum ^= Field4(c, 52);
            sum += Field4(c, 56);
            sum ^= Field4(c, 60);
            sum += Field4(c, 64);
            return ((sum ^ (sum >> 32)) & 1) != 0 ? L.SkPass : L.SkDrop;
        }
    }
}

/// <summary>perf/programs/chain.c <c>chain_count</c>: an atomic per-protocol counter in an ARRAY, then SK_PASS.</summary>
public sealed unsafe class ChainCountBaseline(ArrayMap counters) : SkLookupBaseline
{
    /// <inheritdoc />
    public override string Name => "chain_count";

    /// <inheritdoc />
    public override uint Run(nint ctx)
    {
        uint key = U32(ctx, L.Protocol) & 0xff;
        ulong count = counters.LookupElem((ulong)&key);
        if (count != 0) Interlocked.Increment(ref *(long*)count);
        return L.SkPass;
    }
}

/// <summary>perf/programs/chain.c <c>chain_deny</c>: SK_DROP for an IPv4 source listed in the HASH <c>denied</c>.</summary>
public sealed unsafe class ChainDenyBaseline(HashMap denied) : SkLookupBaseline
{
    /// <inheritdoc />
    public override string Name => "chain_deny";

    /// <inheritdoc />
    public override uint Run(nint ctx)
    {
        if (U32(ctx, L.Family) != (uint)SocketFamily.Inet) return L.SkPass;
        uint addr = U32(ctx, L.RemoteIp4);
        return denied.LookupElem((ulong)&addr) != 0 ? L.SkDrop : L.SkPass;
    }
}

/// <summary>perf/programs/chain.c <c>chain_ports</c>: SK_DROP for a privileged port other than 22, 80 and 443.</summary>
public sealed class ChainPortsBaseline : SkLookupBaseline
{
    /// <inheritdoc />
    public override string Name => "chain_ports";

    /// <inheritdoc />
    public override uint Run(nint ctx)
    {
        uint port = U32(ctx, L.LocalPort);
        return port < 1024 && port != 22 && port != 80 && port != 443 ? L.SkDrop : L.SkPass;
    }
}

/// <summary>
/// An <see cref="IBpfEngine"/> whose "prepared program" is a hand-written baseline: it ignores the
/// instructions, so a baseline can be attached to a hook through <c>SkLookupProgram.Load</c>
/// and measured on the same path (run array, context, aggregation) as the engines.
/// </summary>
public sealed class HandWrittenEngine(SkLookupBaseline baseline) : IBpfEngine
{
    /// <summary>The baseline it runs.</summary>
    public SkLookupBaseline Baseline { get; } = baseline;

    /// <inheritdoc />
    public string Name => "hand-written";

    /// <inheritdoc />
    public BpfEntry Prepare(Instruction[] program, HelperTable helpers)
    {
        var b = Baseline;
        return (r1, _) => b.Run((nint)r1);
    }
}

/// <summary>
/// perf/programs/rule_loop.c: the rules of the ARRAY <c>rules</c> (a count, then 16-byte rules: address, mask,
/// port range, action) walked in order for an IPv4 destination; the first match drops (RULE_DROP) or assigns the
/// <c>rule_socks</c> slot its action names (SK_DROP when the slot is empty).
/// </summary>
public sealed unsafe class RuleLoopBaseline(ArrayMap rules, SockMap socks) : SkLookupBaseline
{
    const int MaxRules = 16;
    const uint RuleDrop = 0xffffffff;

    /// <summary>Binds to the object's maps <c>rules</c> and <c>rule_socks</c>.</summary>
    public RuleLoopBaseline(IReadOnlyList<BpfMap> maps) : this(MapOf<ArrayMap>(maps, "rules"), MapOf<SockMap>(maps, "rule_socks")) { }

    /// <inheritdoc />
    public override string Name => "rule_loop";

    /// <inheritdoc />
    public override uint Run(nint ctx)
    {
        if (U32(ctx, L.Family) != (uint)SocketFamily.Inet) return L.SkPass;
        uint zero = 0;
        byte* set = (byte*)rules.LookupElem((ulong)&zero);
        if (set == null) return L.SkPass;
        uint addr = U32(ctx, L.LocalIp4), port = U32(ctx, L.LocalPort);
        uint count = *(uint*)set;
        for (uint i = 0; i < MaxRules && i < count; i++)
        {
            byte* r = set + 4 + 16 * i;
            if ((addr & *(uint*)(r + 4)) != *(uint*)r || port < *(ushort*)(r + 8) || port > *(ushort*)(r + 10)) continue;
            uint action = *(uint*)(r + 12);
            if (action == RuleDrop) return L.SkDrop;
            ulong sk = socks.LookupElem((ulong)&action);
            if (sk == 0) return L.SkDrop;
            return AssignAndRelease(ctx, sk);
        }
        return L.SkPass;
    }
}
