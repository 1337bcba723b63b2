using System.Collections.Concurrent;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// Issue 17, item 6: lifetimes as Linux has them. A map stays alive while a loaded or attached program uses it,
/// disposing it only drops its owner's reference; a program stays alive while its loader or a link holds it;
/// a disposed namespace refuses new sockets, links and lookups, and a disposal racing other threads leaves
/// nothing alive that was created during it.
/// </summary>
[TestFixture]
public class LifetimeTests
{
    record struct Pair(ulong Value, ulong Runs);

    // Passes when value[0] of element 0 is 42 and counts its runs in value[1]; drops otherwise.
    static string CountingProgram(BpfMap map) => $"""
        stw [%r10-4], 0
        lddw %r1, 0x{map.Handle:x}
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, drop
        ldxdw %r2, [%r0+8]
        add %r2, 1
        stxdw [%r0+8], %r2
        ldxdw %r1, [%r0+0]
        jne %r1, 42, drop
        mov %r0, 1
        exit
        drop:
        mov %r0, 0
        exit
        """;

    static BpfMap Array16(string name) => MapFactory.Create(MapType.Array, 4, 16, 1, 0, name);

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void AMapDisposedWhileItsProgramIsAttachedStaysAlive(string engine)
    {
        using var ns = new NetNamespace();
        var map = Array16("counted");
        Assert.That(map.Update(0u, new Pair(42, 0)), Is.Zero);
        var program = Load(engine, CountingProgram(map));
        Assert.That(program.Maps, Is.EquivalentTo(new[] { map }));
        var link = ns.SkLookup.Attach(program);
        program.Dispose();                      // the link still holds the program
        map.Dispose();                          // the program still holds the map
        Assert.Throws<ObjectDisposedException>(() => map.Lookup(0u, out Pair _));
        MapEpoch.Collect();
        // New maps of the same size would take the freed memory and receive the program's writes.
        var fresh = Enumerable.Range(0, 8).Select(i => Array16($"fresh{i}")).ToArray();
        var packet = Pkt("tcp", "10.0.0.1:1000", "127.0.0.1:80");
        for (int i = 0; i < 100; i++)
            Assert.That(ns.Lookup(packet).Outcome, Is.EqualTo(LookupOutcome.None), $"run {i}: the program passes (42 still read)");
        Assert.That(program.FaultCount, Is.Zero, $"{program.LastFault}");
        foreach (var f in fresh)
        {
            Assert.That(f.Lookup(0u, out Pair v), Is.Zero);
            Assert.That(v, Is.EqualTo(new Pair(0, 0)), $"{f.Name} was written by the program");
        }
        Assert.That(map.IsLive, "the attached program keeps the map");
        link.Detach();                          // the last reference on the program: its maps go
        MapEpoch.Collect();
        Assert.That(program.IsLive, Is.False);
        Assert.That(map.IsLive, Is.False);
        Assert.Throws<ObjectDisposedException>(() => program.Run(0));
        Assert.Throws<ObjectDisposedException>(() => ns.SkLookup.Attach(program));
        foreach (var f in fresh) f.Dispose();
    }

    [Test]
    public void AProgramInAProgArraySlotStaysAliveUntilTheSlotLetsGo()
    {
        var map = Array16("held");
        var program = Load("jit", CountingProgram(map));
        var slots = (ProgArrayMap)MapFactory.Create(MapType.ProgArray, 4, 4, 2, 0, "jumps");
        Assert.That(slots.SetProgram(0, program), Is.Zero);
        program.Dispose();                      // the slot still holds the program: a tail call may run it
        map.Dispose();                          // and the program its map
        MapEpoch.Collect();
        Assert.That(program.IsLive, "the PROG_ARRAY slot keeps the program");
        Assert.That(map.IsLive, "the program in the slot keeps its map");
        Assert.That(slots.Program(0), Is.SameAs(program));
        Assert.That(slots.SetProgram(0, null), Is.Zero);
        MapEpoch.Collect();
        Assert.That(program.IsLive, Is.False, "the slot's reference was the last");
        Assert.That(map.IsLive, Is.False);
        Assert.That(slots.SetProgram(1, program), Is.EqualTo(-Errno.EBADF), "a freed program cannot be stored");
        slots.Dispose();
    }

    [Test]
    public void DisposingAProgArrayDropsItsProgramsEvenOneThatUsesIt()
    {
        var slots = (ProgArrayMap)MapFactory.Create(MapType.ProgArray, 4, 4, 1, 0, "jumps");
        // A program that names the PROG_ARRAY it is stored in: a cycle of references the owner's Dispose breaks.
        var program = Load("interpreter", $"""
            lddw %r2, 0x{slots.Handle:x}
            mov %r0, 1
            exit
            """);
        Assert.That(program.Maps, Is.EquivalentTo(new[] { slots }));
        Assert.That(slots.SetProgram(0, program), Is.Zero);
        program.Dispose();
        Assert.That(program.IsLive, "the slot holds it");
        slots.Dispose();                        // the owner's reference: every slot is emptied (prog_array_map_clear)
        MapEpoch.Collect();
        Assert.That(program.IsLive, Is.False);
        Assert.That(slots.IsLive, Is.False, "the program's reference on the map went with it");
    }

    [Test]
    public void ALoadedProgramKeepsItsMapUntilDisposed()
    {
        var map = Array16("loaded");
        var program = Load("interpreter", CountingProgram(map));
        map.Dispose();
        MapEpoch.Collect();
        Assert.That(map.IsLive, "the loaded program holds the map");
        using var ctx = new SkLookupContext();
        Assert.That(program.Run(ctx.Address), Is.Zero, "value[0] is 0: drop, and no fault");
        program.Dispose();
        MapEpoch.Collect();
        Assert.That(map.IsLive, Is.False);
    }

    [Test]
    public void UpdateMovesTheLinksReference()
    {
        using var ns = new NetNamespace();
        var a = Load("interpreter", "mov %r0, 1\nexit", "a");
        var b = Load("interpreter", "mov %r0, 1\nexit", "b");
        var link = ns.SkLookup.Attach(a);
        a.Dispose();
        Assert.That(a.IsLive, "the link holds a");
        link.Update(b);
        Assert.That(a.IsLive, Is.False, "the update dropped the link's reference on a");
        b.Dispose();
        Assert.That(b.IsLive, "the link holds b");
        Assert.Throws<ObjectDisposedException>(() => link.Update(a));
        link.Detach();
        Assert.That(b.IsLive, Is.False);
    }

    [Test]
    public void ADisposedNamespaceRefusesFurtherUse()
    {
        var ns = new NetNamespace();
        var s = Tcp(ns, "127.0.0.1:7500");
        var program = Load("interpreter", "mov %r0, 1\nexit");
        var link = ns.SkLookup.Attach(program);
        ns.Dispose();
        Assert.That(s.IsClosed);
        Assert.That(link.IsAttached, Is.False);
        Assert.Throws<ObjectDisposedException>(() => ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp));
        Assert.Throws<ObjectDisposedException>(() => ns.SkLookup.Attach(program));
        Assert.Throws<ObjectDisposedException>(() => ns.Lookup(Pkt("tcp", "10.0.0.1:1000", "127.0.0.1:7500")));
        Assert.That(ns.SkLookup.Query(), Is.Empty);
        ns.Dispose();
        program.Dispose();
        Assert.That(program.IsLive, Is.False, "the namespace's disposal dropped the link's reference");
    }

    [Test]
    public void DisposeRacingCreatorsLeavesNothingAlive()
    {
        var program = Load("interpreter", "mov %r0, 1\nexit");
        long rounds = 0, made = 0;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (sw.Elapsed < Stress.Duration)
        {
            var ns = new NetNamespace();
            var socks = new ConcurrentBag<Sock>();
            var links = new ConcurrentBag<SkLookupLink>();
            var errors = new ConcurrentQueue<Exception>();
            using var go = new Barrier(3);
            var creators = new[]
            {
                Task.Run(() =>
                {
                    go.SignalAndWait();
                    for (int i = 0; i < 200; i++)
                        try { socks.Add(Tcp(ns, $"127.0.0.1:{8000 + i}")); }
                        catch (ObjectDisposedException) { }
                        catch (SocketErrorException e) when (e.Errno == Errno.EBADF) { }    // closed between create and bind
                        catch (Exception e) { errors.Enqueue(e); }
                }),
                Task.Run(() =>
                {
                    go.SignalAndWait();
                    for (int i = 0; i < 200; i++)
                        try
                        {
                            var l = ns.SkLookup.Attach(program);
                            links.Add(l);
                            l.Detach();
                            links.Add(ns.SkLookup.Attach(program));
                        }
                        catch (ObjectDisposedException) { }
                        catch (SocketErrorException e) when (e.Errno == Errno.E2BIG) { }
                        catch (Exception e) { errors.Enqueue(e); }
                }),
            };
            go.SignalAndWait();
            Thread.SpinWait(Random.Shared.Next(20_000));
            ns.Dispose();
            Task.WaitAll(creators);
            rounds++;
            made += socks.Count + links.Count;
            Assert.That(errors, Is.Empty);
            Assert.That(socks.Where(x => !x.IsClosed), Is.Empty, $"round {rounds}: a socket created during Dispose is open");
            Assert.That(links.Where(x => x.IsAttached), Is.Empty, $"round {rounds}: a link created during Dispose is attached");
            Assert.That(ns.Sockets.Sockets, Is.Empty);
            Assert.That(ns.SkLookup.Links, Is.Empty);
        }
        program.Dispose();
        Assert.That(program.IsLive, Is.False, "every link's reference was dropped");
        TestContext.Out.WriteLine($"{rounds} rounds, {made} sockets and links made");
    }
}
