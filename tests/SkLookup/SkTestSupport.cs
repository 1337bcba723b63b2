using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.SkLookup;

/// <summary>Small helpers shared by the SK_LOOKUP tests.</summary>
static class SkTestSupport
{
    public static Packet Pkt(string proto, string from, string to, int ifindex = 1)
    {
        return new Packet(proto == "tcp" ? SocketProtocol.Tcp : SocketProtocol.Udp, Ep(from), Ep(to), ifindex);
    }

    public static InetEndPoint Ep(string text)
    {
        Assert.That(InetEndPoint.TryParse(text, out var e), $"bad end point {text}");
        return e;
    }

    /// <summary>Runs raw asm on a context block through an engine (after the ctx-load rewrite) and returns the full r0.</summary>
    public static ulong RunRaw(string engine, string asm, SkLookupContext ctx)
    {
        var code = CtxLoadRewriter.Rewrite(Assembler.Assemble(asm));
        var entry = Engines.Get(engine).Prepare(code, SkLookupHelpers.CreateTable());
        return entry((ulong)ctx.Address, 0);
    }

    public static SkLookupProgram Load(string engine, string asm, string name = "prog") =>
        SkLookupProgram.Load(name, Assembler.Assemble(asm), Engines.Get(engine));

    public static Sock Tcp(NetNamespace ns, string bind, bool listen = true, bool reuseport = false, bool? v6only = null)
    {
        var ep = Ep(bind);
        var s = ns.Sockets.Create(ep.Family, SocketProtocol.Tcp);
        if (reuseport) s.ReusePort = true;
        if (v6only is { } v) s.V6Only = v;
        s.Bind(ep);
        if (listen) s.Listen();
        return s;
    }

    public static Sock Udp(NetNamespace ns, string? bind, bool reuseport = false, bool? v6only = null, string? peer = null, SocketFamily family = SocketFamily.Inet)
    {
        var ep = bind == null ? (InetEndPoint?)null : Ep(bind);
        var s = ns.Sockets.Create(ep?.Family ?? family, SocketProtocol.Udp);
        if (reuseport) s.ReusePort = true;
        if (v6only is { } v) s.V6Only = v;
        if (ep is { } e) s.Bind(e);
        if (peer != null) s.Connect(Ep(peer));
        return s;
    }

    public static string Hex(nint p) => $"0x{(ulong)p:x}";
}
