using System.Collections;
using System.Collections.Concurrent;
using System.Net;
using System.Reflection;
using BpfJit.Frontend;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// Issue 17, deliverable 2: every public instance member of a namespace, its socket table and hook, sockets,
/// links, programs and maps, called (by reflection, with plausible arguments) while other threads close and
/// dispose them and again after: nothing but <see cref="ObjectDisposedException"/> or a documented result
/// (an errno, a <see cref="SocketErrorException"/>, an argument error). A NullReferenceException,
/// IndexOutOfRangeException or AccessViolationException fails the test (or kills the host).
/// Left out, by their documented contract: the program-side map operations (<c>LookupElem</c> and the like take
/// raw pointers a verified program holds inside a read-side section) and static members taking raw handles.
/// </summary>
[TestFixture]
public class DisposedApiTests
{
    static readonly HashSet<string> ProgramSide = ["LookupElem", "LookupPerCpuElem", "UpdateElem", "DeleteElem", "ForEachElem", "LookupElemByWalk", "LookupElemByIndex", "LookupElemByStride"];

    static readonly MapType[] MapTypes = [MapType.Array, MapType.Hash, MapType.LpmTrie, MapType.PerCpuArray, MapType.SockMap, MapType.SockHash];

    static bool Allowed(Exception e) => e is ObjectDisposedException or SocketErrorException or ArgumentException
        or BpfException or NotSupportedException;

    sealed class World
    {
        public NetNamespace Ns = new();
        public List<Sock> Socks = [];
        public List<BpfMap> Maps = [];
        public SkLookupProgram Program = null!;
        public SkLookupLink Link = null!;

        public IEnumerable<object> Objects =>
            new object[] { Ns, Ns.Sockets, Ns.SkLookup, Program, Link }.Concat(Socks).Concat(Maps);

        public void Teardown()
        {
            foreach (var s in Socks) s.Close();
            Link.Detach();
            Program.Dispose();
            foreach (var m in Maps) m.Dispose();
            Ns.Dispose();
            MapEpoch.Collect();
        }
    }

    static World Build()
    {
        var w = new World();
        w.Socks.Add(Tcp(w.Ns, "127.0.0.1:7600", reuseport: true));
        w.Socks.Add(Udp(w.Ns, "[::]:7601", v6only: true));
        w.Socks.Add(w.Ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp));
        foreach (var t in MapTypes)
            w.Maps.Add(t switch
            {
                MapType.LpmTrie => MapFactory.Create(t, 8, 8, 16, MapFlags.NoPrealloc, "lpm"),
                MapType.SockMap or MapType.SockHash => MapFactory.Create(t, 4, 8, 4, 0, t.ToString()),
                _ => MapFactory.Create(t, 4, 8, 4, 0, t.ToString()),
            });
        ((SockMap)w.Maps.First(m => m is SockMap)).Update(0, w.Socks[0]);
        w.Program = Load("interpreter", $"lddw %r1, 0x{w.Maps[0].Handle:x}\nmov %r0, 1\nexit");
        w.Link = w.Ns.SkLookup.Attach(w.Program);
        return w;
    }

    static object? Argument(Type t, World w)
    {
        if (t == typeof(string)) return "x";
        if (t == typeof(InetEndPoint)) return Ep("127.0.0.1:7700");
        if (t == typeof(InetEndPoint?)) return Ep("127.0.0.1:7700");
        if (t == typeof(Packet)) return Pkt("tcp", "10.0.0.1:1000", "127.0.0.1:7600");
        if (t == typeof(IPEndPoint)) return new IPEndPoint(IPAddress.Loopback, 7600);
        if (t == typeof(Sock)) return w.Socks[0];
        if (t == typeof(SkLookupProgram)) return w.Program;
        if (t == typeof(byte[])) return new byte[4];
        if (t.IsByRef) return Argument(t.GetElementType()!, w);
        if (t.IsValueType) return Activator.CreateInstance(t);
        return null;
    }

    static IEnumerable<(string Name, Action<World, object> Call)> Members(Type type)
    {
        foreach (var m in type.GetMethods(BindingFlags.Public | BindingFlags.Instance))
        {
            if (m.DeclaringType == typeof(object) || m.IsGenericMethodDefinition || ProgramSide.Contains(m.Name)) continue;
            if (m.Name is "Dispose" or "Close" or "Detach") continue;                // the teardown itself
            if (m.Name.StartsWith("add_", StringComparison.Ordinal) || m.Name.StartsWith("remove_", StringComparison.Ordinal)) continue;
            var ps = m.GetParameters();
            if (ps.Any(p => p.ParameterType.IsByRefLike || p.ParameterType.IsPointer || (p.ParameterType.IsByRef && p.ParameterType.GetElementType()!.IsByRefLike))) continue;
            yield return ($"{type.Name}.{m.Name}({string.Join(", ", ps.Select(p => p.ParameterType.Name))})", (w, target) =>
            {
                var args = ps.Select(p => Argument(p.ParameterType, w)).ToArray();
                var result = m.Invoke(target, args);
                if (result is IEnumerable e and not string) foreach (var _ in e) { }
            });
        }
    }

    // The span-taking userspace map API, which reflection cannot call.
    static IEnumerable<(string Name, Action<World, object> Call)> SpanMembers()
    {
        yield return ("BpfMap.Lookup(span)", (_, o) => { var m = (BpfMap)o; m.Lookup(new byte[m.KeySize], new byte[m.UserValueSize]); });
        yield return ("BpfMap.Update(span)", (_, o) => { var m = (BpfMap)o; m.Update(new byte[m.KeySize], new byte[m.UserValueSize]); });
        yield return ("BpfMap.Delete(span)", (_, o) => { var m = (BpfMap)o; m.Delete(new byte[m.KeySize]); });
        yield return ("BpfMap.GetNextKey(span)", (_, o) => { var m = (BpfMap)o; m.GetNextKey([], new byte[m.KeySize]); });
    }

    static void CallAll(World w, ConcurrentDictionary<string, Exception> bad, ref long calls)
    {
        foreach (var o in w.Objects)
        {
            var members = Members(o.GetType());
            if (o is BpfMap) members = members.Concat(SpanMembers());
            foreach (var (name, call) in members)
            {
                try { call(w, o); }
                catch (Exception e)
                {
                    var inner = e is TargetInvocationException { InnerException: { } ie } ? ie : e;
                    if (!Allowed(inner)) bad.TryAdd(name, inner);
                }
                calls++;
            }
        }
    }

    [Test]
    public void EveryPublicMemberOfClosedObjectsRefusesOrAnswers()
    {
        var bad = new ConcurrentDictionary<string, Exception>();
        long calls = 0, rounds = 0;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            var w = Build();
            using var go = new Barrier(3);
            long local = 0;
            var callers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
            {
                go.SignalAndWait();
                long n = 0;
                CallAll(w, bad, ref n);
                Interlocked.Add(ref local, n);
            })).ToArray();
            go.SignalAndWait();
            w.Teardown();
            Task.WaitAll(callers);
            CallAll(w, bad, ref local);      // and once everything is closed
            w.Teardown();                    // twice: nothing
            calls += local;
            rounds++;
        } while (sw.Elapsed < Stress.Duration);
        TestContext.Out.WriteLine($"{rounds} rounds, {calls} calls");
        Assert.That(bad.Select(kv => $"{kv.Key}: {kv.Value.GetType().Name}: {kv.Value.Message}"), Is.Empty);
    }
}
