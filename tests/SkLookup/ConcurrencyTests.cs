using System.Diagnostics;
using BpfJit.Runtime.Checked;
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
        long refused = 0, lookups = 0;
        var clock = Stopwatch.StartNew();

        var readers = Enumerable.Range(0, lookupThreads).Select(t => new Thread(() =>
        {
            int port = 1000 + t * 10000;
            while (!stop.IsCancellationRequested)
            {
                long start = clock.ElapsedTicks;
                var r = ns.Lookup(Pkt("tcp", $"10.0.0.{t + 1}:{port++ % 60000 + 1}", "127.0.0.1:7007"));
                Interlocked.Increment(ref lookups);
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
        // Bounded by work, not time: run until 30,000 lookups, 10 closes and every configuration were seen
        // (a loaded machine makes this slower, never different); the 120 s cap only bounds a hang.
        var cap = Stopwatch.StartNew();
        while ((Interlocked.Read(ref lookups) < 30_000 || Volatile.Read(ref closes) <= 10 || answers.Count < 3) && cap.Elapsed < TimeSpan.FromSeconds(120))
            Thread.Sleep(10);
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

    /// <summary>
    /// Stress, count-bounded (docs/reliability.md): one lookup thread per core runs a fixed number of
    /// lookups through a program that checks a checksummed hash value (v[1] == ~v[0]) and redirects
    /// through a sockmap, while one thread rewrites and deletes values, swaps the link's program and
    /// closes and reopens the redirect target. No lookup may see a torn value (the program redirects
    /// to a marker socket on one), no answer may be impossible, and after teardown the native blocks and managed heap are
    /// back at their baseline. <c>BPFJIT_STRESS_LOOKUPS</c> sets the lookups per thread.
    /// </summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void StressLeavesNoTornValuesAndNoLeaks(string engine)
    {
        int perThread = int.TryParse(Environment.GetEnvironmentVariable("BPFJIT_STRESS_LOOKUPS"), out int n) ? n : 200_000;
        Settle();
        long nativeBefore = NativeAllocations.LiveBlocks;
        long managedBefore = GC.GetTotalMemory(forceFullCollection: true);
        var counts = RunStress(engine, perThread);
        Settle();
        long nativeAfter = NativeAllocations.LiveBlocks;
        long managedAfter = GC.GetTotalMemory(forceFullCollection: true);
        TestContext.Out.WriteLine($"{engine}: {counts}; native blocks {nativeBefore} -> {nativeAfter}; managed heap {managedBefore / 1024} KiB -> {managedAfter / 1024} KiB");
        Assert.That(nativeAfter, Is.EqualTo(nativeBefore), "every native block allocated by the run was freed");
        Assert.That(managedAfter - managedBefore, Is.LessThan(4L << 20), "the managed heap is back near its baseline");
    }

    /// <summary>What one stress run did.</summary>
    sealed record StressCounts(int Threads, long Lookups, long Redirected, long Refused, long Updates, long Deletes, long Swaps, long Reopens, long UserspaceReads)
    {
        public override string ToString() =>
            $"{Threads} lookup threads, {Lookups} lookups ({Redirected} redirected, {Refused} refused), {Updates} value updates, {Deletes} deletes, {UserspaceReads} userspace reads, {Swaps} program swaps, {Reopens} socket close/reopens";
    }

    static void Settle()
    {
        for (int i = 0; i < 4; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            MapEpoch.Collect();
        }
    }

    static StressCounts RunStress(string engine, int perThread)
    {
        var ns = new NetNamespace();
        var regular = Tcp(ns, "127.0.0.1:7007");
        using var values = MapFactory.Create(MapType.Hash, 4, 16, 64, 0, "values");
        using var map = (SockMap)MapFactory.Create(MapType.SockMap, 4, 8, 2, 0, "redir_map");
        static byte[] Value(ulong v) => [.. BitConverter.GetBytes(v), .. BitConverter.GetBytes(~v)];
        for (uint k = 0; k < 64; k++) values.Update(BitConverter.GetBytes(k), Value(k));
        string checkAndRedirect = $"""
            mov %r6, %r1
            ldxw %r2, [%r6+36]
            and %r2, 63
            stxw [%r10-4], %r2
            mov %r2, %r10
            add %r2, -4
            lddw %r1, 0x{values.Handle:x}
            call 1
            jeq %r0, 0, redirect
            ldxdw %r3, [%r0+0]
            ldxdw %r4, [%r0+8]
            xor %r4, -1
            jne %r3, %r4, torn
            redirect:
            stw [%r10-4], 0
            select:
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
            mov %r1, %r7
            call 86
            pass:
            mov %r0, 1
            exit
            torn:
            stw [%r10-4], 1
            ja select
            """;
        var checking = Load(engine, checkAndRedirect, "check");
        var plain = Load(engine, "mov %r0, 1\nexit", "pass");
        var link = ns.SkLookup.Attach(checking);
        Sock current = Tcp(ns, "127.0.0.2:8008");
        Assert.That(map.Update(0, current), Is.Zero);
        // A torn value redirects to this socket, which nothing else selects.
        var tornMarker = Tcp(ns, "127.0.0.9:9009");
        Assert.That(map.Update(1, tornMarker), Is.Zero);

        int threads = Math.Max(2, Environment.ProcessorCount);
        long lookups = 0, redirected = 0, refused = 0, updates = 0, deletes = 0, swaps = 0, reopens = 0, reads = 0;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        int running = threads;
        var readers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            for (int i = 0; i < perThread; i++)
            {
                var r = ns.Lookup(Pkt("tcp", $"10.0.{t}.1:{i % 60000 + 1}", "127.0.0.1:7007"));
                switch (r.Outcome)
                {
                    case LookupOutcome.Socket when r.Socket == regular: break;
                    case LookupOutcome.Socket when r.Socket == tornMarker: failures.Enqueue($"a lookup saw a torn value (thread {t}, lookup {i})"); break;
                    case LookupOutcome.Socket: Interlocked.Increment(ref redirected); break;
                    case LookupOutcome.Refused: Interlocked.Increment(ref refused); break;
                    default: failures.Enqueue($"outcome {r.Outcome}: the regular listener always exists"); break;
                }
                Interlocked.Increment(ref lookups);
            }
            Interlocked.Decrement(ref running);
        })).ToList();
        var churn = new Thread(() =>
        {
            var rng = new Random(5);
            var buffer = new byte[16];
            for (long i = 0; Volatile.Read(ref running) > 0; i++)
            {
                var key = BitConverter.GetBytes((uint)rng.Next(64));
                switch (i % 8)
                {
                    case 0 or 1 or 2:
                        values.Update(key, Value((ulong)rng.NextInt64()));
                        updates++;
                        break;
                    case 3:
                        values.Delete(key);
                        deletes++;
                        break;
                    case 4:
                        if (values.Lookup(key, buffer) == 0 && BitConverter.ToUInt64(buffer, 0) != ~BitConverter.ToUInt64(buffer, 8))
                            failures.Enqueue("a userspace read saw a torn value");
                        reads++;
                        break;
                    case 5:
                        link.Update(swaps++ % 2 == 0 ? plain : checking);
                        break;
                    case 6 when i % 64 == 6:
                        var old = current;
                        old.Close();
                        current = Tcp(ns, "127.0.0.2:8008");
                        map.Update(0, current);
                        reopens++;
                        break;
                }
            }
        });
        foreach (var th in readers.Append(churn)) th.Start();
        foreach (var th in readers.Append(churn)) Assert.That(th.Join(TimeSpan.FromMinutes(5)), "thread finished");

        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(10)));
        Assert.That(lookups, Is.EqualTo((long)threads * perThread));
        Assert.That(updates, Is.GreaterThan(0));
        // Teardown: everything the run created goes, so the caller can compare with its baseline.
        link.Detach();
        foreach (var s in ns.Sockets.Sockets) s.Close();
        return new StressCounts(threads, lookups, redirected, refused, updates, deletes, swaps, reopens, reads);
    }
}
