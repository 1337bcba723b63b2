using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Tests.Support;

/// <summary>What the SK_REUSEPORT tests build on BpfJit's side again and again: a group's members, a program's selection.</summary>
public static class ReuseportMembers
{
    /// <summary>
    /// <paramref name="count"/> new sockets of <paramref name="protocol"/> in <paramref name="ns"/> with SO_REUSEPORT, bound to
    /// <paramref name="local"/> (TCP: listening), in that order.
    /// </summary>
    public static Sock[] Create(NetNamespace ns, SocketProtocol protocol, InetEndPoint local, int count) => [.. Enumerable.Range(0, count).Select(_ =>
    {
        var s = ns.Sockets.Create(local.Family, protocol);
        s.ReusePort = true;
        s.Bind(local);
        if (protocol == SocketProtocol.Tcp) s.Listen();
        return s;
    })];

    /// <summary>
    /// Assembler text from the label <c>select:</c>: <c>bpf_sk_select_reuseport(ctx, map, &amp;key, 0)</c> with ctx in r6, the key
    /// in r1 (stored at r10-12) and the map <paramref name="map"/> (an address or a marker the caller binds), then SK_PASS.
    /// </summary>
    public static string SelectTail(string map) => $"""
        select:
        stxw [%r10-12], %r1
        mov %r1, %r6
        lddw %r2, {map}
        mov %r3, %r10
        add %r3, -12
        mov %r4, 0
        call 82
        mov %r0, 1
        exit
        """;
}
