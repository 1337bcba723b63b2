using System.Text;
using BpfJit.Examples.UdpEcho;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Examples;

/// <summary>
/// The UdpEcho stack on packets given in memory (no TUN device): the clang-built steer.o verified,
/// attached and run on each engine, the handler each datagram reaches and the reply packet it builds.
/// </summary>
public class EchoStackTests
{
    static readonly byte[] Client4 = [10, 77, 0, 254], Client6 = Convert.FromHexString("fd7700000000000000000000000000fe");

    static byte[] Server(int family, int host) => family == 4
        ? [10, 77, 0, (byte)host]
        : Convert.FromHexString("fd77000000000000000000000000000" + host);

    // (destination host, port) -> the answering socket, or the verdict when nobody answers.
    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (string engine in Engines.Names)
            foreach (int family in new[] { 4, 6 })
            {
                foreach (var (host, port, expected) in new (int, ushort, string)[]
                {
                    (1, 7000, "range"), (1, 7003, "range"), (1, 7009, "range"), // the program's port range
                    (1, 7010, "NoSocket"), (1, 6999, "NoSocket"),                // just outside it
                    (2, 1234, "address"), (2, 7003, "address"), (2, 5000, "address"), // the steered address wins over ports and listeners
                    (1, 5000, "plain"), (1, 9000, "address"),                    // SK_PASS: the listeners decide
                    (1, 7777, "Refused"), (2, 7777, "Refused"),                  // SK_DROP, although 'blocked' listens on 7777
                })
                    yield return new TestCaseData(engine, family, host, port, expected)
                        .SetName($"{engine} IPv{family} host {host} port {port} -> {expected}");
            }
    }

    [TestCaseSource(nameof(Cases))]
    public void EachDatagramReachesTheSteeredHandler(string engine, int family, int host, ushort port, string expected)
    {
        using var stack = EchoService.Create(Path.Combine(Paths.RepoRoot, "examples/UdpEcho/bpf/steer.o"), Engines.Get(engine));
        var events = new List<PacketEvent>();
        stack.PacketProcessed += events.Add;
        byte[] client = family == 4 ? Client4 : Client6, server = Server(family, host);
        var packet = new byte[100];
        int n = UdpDatagram.Write(packet, client, 40000, server, port, "hello"u8);
        var reply = new byte[200];
        int length = stack.Process(packet.AsSpan(0, n), reply);

        Assert.That(events, Has.Count.EqualTo(1));
        if (expected is "Refused" or "NoSocket")
        {
            Assert.That(length, Is.Zero, "a refused or unmatched datagram gets no answer");
            Assert.That(events[0].Verdict.ToString(), Is.EqualTo(expected));
            return;
        }
        Assert.That(events[0].Verdict, Is.EqualTo(Verdict.Answered));
        Assert.That(UdpDatagram.TryParse(reply.AsSpan(0, length), out var r, out string reason), Is.True, reason);
        Assert.That(r.SourceAddress.ToArray(), Is.EqualTo(server), "the reply leaves from the address the client sent to");
        Assert.That(r.SourcePort, Is.EqualTo(port));
        Assert.That(r.DestinationAddress.ToArray(), Is.EqualTo(client));
        Assert.That(r.DestinationPort, Is.EqualTo(40000));
        Assert.That(Encoding.ASCII.GetString(r.Payload), Is.EqualTo($"{expected}: hello"));
    }

    [Test]
    public void MalformedPacketsAreCountedAndNotAnswered()
    {
        using var stack = EchoService.Create(Path.Combine(Paths.RepoRoot, "examples/UdpEcho/bpf/steer.o"), Engines.Get("jit"));
        var packet = new byte[100];
        int n = UdpDatagram.Write(packet, Client4, 40000, Server(4, 1), 7003, "hello"u8);
        packet[n - 1] ^= 0xff; // breaks the UDP checksum
        Assert.That(stack.Process(packet.AsSpan(0, n), new byte[200]), Is.Zero);
        Assert.That(stack.Counts[Verdict.Malformed], Is.EqualTo(1));
        Assert.That(stack.Counts[Verdict.Answered], Is.Zero);
    }

    [Test]
    public void AClosedSocketIsNoLongerReached()
    {
        using var stack = EchoService.Create(Path.Combine(Paths.RepoRoot, "examples/UdpEcho/bpf/steer.o"), Engines.Get("jit"));
        // [close]
        var range = stack.Namespace.Sockets.Sockets.Single(s => s.Name == "range");
        range.Close(); // leaves the socket table and steer_sockets: the program finds an empty slot and drops
        // [/close]
        var packet = new byte[100];
        int n = UdpDatagram.Write(packet, Client4, 40000, Server(4, 1), 7003, "hello"u8);
        Assert.That(stack.Process(packet.AsSpan(0, n), new byte[200]), Is.Zero);
        Assert.That(stack.Counts[Verdict.Refused], Is.EqualTo(1));
    }
}
