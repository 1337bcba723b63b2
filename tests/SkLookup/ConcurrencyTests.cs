using System.Diagnostics;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// Lookups on several threads while one thread rewrites the sockmap, one swaps the link's program
/// and one closes and reopens the redirect target. Every answer must be one some configuration
/// allowed; a socket is never returned by a lookup that began after its close returned; a
/// "refused" can only come from a close racing a lookup that had already found the socket.
/// </summary>
[TestFixture]
public class ConcurrencyTests
{
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void LookupsWhileEverythingChanges(string engine)
    {
        var ns = new NetNamespace();
        var regular = Tcp(ns, "127.0.0.1:7007");
        var b = Tcp(ns, "127.0.0.3:8008");
        using var map = (SockMap)MapFactory.Create(MapType.SockMap, 4, 8, 2, 0, "redir_map");
        string redir = $"""
            mov %r6, %r1
            stw [%r10-4], 0
            lddw %r1, 0x{map.Handle:x}
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, pass
            mov %r7, %r0
            mov %r1, %r6
            mov %r2, %r7
            mov %r3, 0
            call 124
            mov %r8, %r0
            mov %r1, %r7
            call 86
            mov %r0, 1
            jeq %r8, 0, out
            mov %r0, 0
            out:
            exit
            pass:
            mov %r0, 1
            exit
            """;
        var redirProgram = Load(engine, redir, "redir");
        var passProgram = Load(engine, "mov %r0, 1\nexit", "pass");
        var link = ns.SkLookup.Attach(redirProgram);

        var created = new System.Collections.Concurrent.ConcurrentDictionary<Sock, long>(); // socket -> close timestamp (0 = open)
        created[regular] = 0;
        created[b] = 0;
        Sock current = Tcp(ns, "127.0.0.2:8008");
        created[current] = 0;
        Assert.That(map.Update(0, current), Is.Zero);

        using var stop = new CancellationTokenSource();
        int closes = 0, lookupThreads = 3;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var answers = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        long refused = 0;
        var clock = Stopwatch.StartNew();

        var readers = Enumerable.Range(0, lookupThreads).Select(t => new Thread(() =>
        {
            int port = 1000 + t * 10000;
            while (!stop.IsCancellationRequested)
            {
                long start = clock.ElapsedTicks;
                var r = ns.Lookup(Pkt("tcp", $"10.0.0.{t + 1}:{port++ % 60000 + 1}", "127.0.0.1:7007"));
                switch (r.Outcome)
                {
                    case LookupOutcome.Socket:
                        if (!created.TryGetValue(r.Socket!, out long closedAt)) failures.Enqueue($"unknown socket {r.Socket}");
                        else if (closedAt != 0 && closedAt < start) failures.Enqueue($"socket {r.Socket} handed out after its close");
                        answers.AddOrUpdate(r.Socket == regular ? "regular" : r.Socket == b ? "B" : "A", 1, (_, n) => n + 1);
                        break;
                    case LookupOutcome.Refused:
                        Interlocked.Increment(ref refused);
                        break;
                    default:
                        failures.Enqueue("none: the regular listener always exists");
                        break;
                }
            }
        })).ToList();

        var writers = new List<Thread>
        {
            new(() =>
            {
                int i = 0;
                while (!stop.IsCancellationRequested)
                {
                    switch (i++ % 3)
                    {
                        case 0: map.Update(0, b); break;
                        case 1: map.Delete(BitConverter.GetBytes(0u)); break;
                        default: map.Update(0, Volatile.Read(ref current)); break;
                    }
                }
            }),
            new(() =>
            {
                int i = 0;
                while (!stop.IsCancellationRequested) link.Update(i++ % 2 == 0 ? passProgram : redirProgram);
            }),
            new(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var old = Volatile.Read(ref current);
                    old.Close();
                    created[old] = clock.ElapsedTicks;
                    Interlocked.Increment(ref closes);
                    var fresh = Tcp(ns, "127.0.0.2:8008");
                    created[fresh] = 0;
                    Volatile.Write(ref current, fresh);
                    map.Update(0, fresh);
                    Thread.Sleep(1);
                }
            }),
        };

        foreach (var th in readers.Concat(writers)) th.Start();
        Thread.Sleep(1500);
        stop.Cancel();
        foreach (var th in readers.Concat(writers)) Assert.That(th.Join(TimeSpan.FromSeconds(30)), "thread finished");

        TestContext.Out.WriteLine($"answers: {string.Join(", ", answers.Select(kv => $"{kv.Key} {kv.Value}"))}; refused {refused}; closes {closes}");
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(10)));
        Assert.That(answers.Keys, Is.SupersetOf(new[] { "regular", "A", "B" }), "every configuration was exercised");
        Assert.That(closes, Is.GreaterThan(10));
        // Only a lookup in flight when a close happened can see its socket refused (sk_assign on a closed socket fails).
        Assert.That(refused, Is.LessThanOrEqualTo((long)closes * lookupThreads), $"refused {refused} with {closes} closes");
        MapEpoch.Collect();
    }
}
