using BpfJit.Runtime;
using System.Net;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>LPM_TRIE: longest-prefix match, the kernel's key layout and errors, its next-key post-order, a reference model.</summary>
[TestFixture]
public class LpmTrieTests
{
    static byte[] Key(string cidr)
    {
        var parts = cidr.Split('/');
        var ip = IPAddress.Parse(parts[0]).GetAddressBytes();
        int prefix = parts.Length > 1 ? int.Parse(parts[1]) : ip.Length * 8;
        return [.. BitConverter.GetBytes(prefix), .. ip];
    }

    static LpmTrieMap Create(int dataSize, int max = 1024) =>
        (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 4 + dataSize, 4, max, MapFlags.NoPrealloc, "lpm");

    static int Find(BpfMap map, string address)
    {
        var value = new byte[4];
        int r = map.Lookup(Key(address), value);
        return r == 0 ? BitConverter.ToInt32(value) : r;
    }

    static readonly string[] V4Table = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "192.168.0.0/16"];

    [TestCase("10.1.2.3", 5)]
    [TestCase("10.1.2.4", 4)]
    [TestCase("10.1.3.1", 3)]
    [TestCase("10.2.0.0", 2)]
    [TestCase("11.0.0.0", 1)]
    [TestCase("192.168.255.255", 6)]
    [TestCase("192.169.0.0", 1)]
    [TestCase("10.1.2.3/16", 3)]          // the key's own prefix length bounds the match
    [TestCase("10.1.2.3/0", 1)]
    public void LongestMatchV4(string address, int expected)
    {
        using var map = Create(4);
        for (int i = 0; i < V4Table.Length; i++) Assert.That(map.Update(Key(V4Table[i]), U32((uint)i + 1)), Is.EqualTo(0));
        Assert.That(Find(map, address), Is.EqualTo(expected));
    }

    [Test]
    public void WithoutDefaultRouteMissesAreENOENT()
    {
        using var map = Create(4);
        map.Update(Key("10.0.0.0/8"), U32(1));
        Assert.That(Find(map, "11.0.0.0"), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Delete(Key("10.0.0.0/8")), Is.EqualTo(0));
        Assert.That(Find(map, "10.0.0.1"), Is.EqualTo(-Errno.ENOENT));
    }

    [TestCase("2001:db8::1", 128)]
    [TestCase("2001:db8::2", 64)]
    [TestCase("2001:db8:0:1::", 32)]
    [TestCase("fe80::1", 0)]
    public void LongestMatchV6(string address, int expected)
    {
        using var map = Create(16);
        foreach (var p in new[] { "::/0", "2001:db8::/32", "2001:db8::/64", "2001:db8::1/128" })
            Assert.That(map.Update(Key(p), U32(uint.Parse(p.Split('/')[1]))), Is.EqualTo(0));
        Assert.That(Find(map, address), Is.EqualTo(expected));
    }

    [Test]
    public void UpdateAndDeleteErrors()
    {
        using var map = Create(4, max: 2);
        Assert.Multiple(() =>
        {
            Assert.That(map.Update(Key("1.0.0.0/33"), U32(1)), Is.EqualTo(-Errno.EINVAL), "prefixlen above the maximum");
            Assert.That(map.Update(Key("1.0.0.0/8"), U32(1), 3), Is.EqualTo(-Errno.EINVAL), "bad flags");
            Assert.That(map.Update(Key("1.0.0.0/8"), U32(1), UpdateFlags.Exist), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Update(Key("1.0.0.0/8"), U32(1), UpdateFlags.NoExist), Is.EqualTo(0));
            Assert.That(map.Update(Key("1.0.0.0/8"), U32(2), UpdateFlags.NoExist), Is.EqualTo(-Errno.EEXIST));
            Assert.That(map.Update(Key("1.0.0.0/8"), U32(3), UpdateFlags.Exist), Is.EqualTo(0));
            Assert.That(Find(map, "1.2.3.4"), Is.EqualTo(3));
            Assert.That(map.Update(Key("2.0.0.0/8"), U32(4)), Is.EqualTo(0), "this creates an intermediate node, which is not an entry");
            Assert.That(map.Update(Key("0.0.0.0/6"), U32(5)), Is.EqualTo(-Errno.ENOSPC), "full");
            Assert.That(map.Update(Key("0.0.0.0/6"), U32(5), UpdateFlags.Exist), Is.EqualTo(-Errno.ENOENT), "the join node is intermediate, not an element");
            Assert.That(map.Delete(Key("0.0.0.0/6")), Is.EqualTo(-Errno.ENOENT), "intermediate nodes cannot be deleted");
            Assert.That(map.Delete(Key("1.0.0.0/33")), Is.EqualTo(-Errno.EINVAL));
            Assert.That(map.Delete(Key("1.0.0.0/9")), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Lookup(Key("1.0.0.0/33"), new byte[4]), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Delete(Key("1.0.0.0/8")), Is.EqualTo(0));
            Assert.That(map.Count, Is.EqualTo(1));
            Assert.That(map.Update(Key("0.0.0.0/6"), U32(5)), Is.EqualTo(0));
        });
    }

    // tools/testing/selftests/bpf/test_lpm_map.c, test_lpm_get_next_key: the kernel's post-order.
    [Test]
    public void NextKeyFollowsTheKernelsPostOrder()
    {
        using var map = Create(4);
        var next = new byte[8];
        Assert.That(map.GetNextKey([], next), Is.EqualTo(-Errno.ENOENT), "empty");

        List<string> Walk() => map.Keys().Select(k => $"{new IPAddress(k[4..])}/{BitConverter.ToInt32(k)}").ToList();

        map.Update(Key("192.168.0.0/16"), U32(1));
        Assert.That(Walk(), Is.EqualTo(new[] { "192.168.0.0/16" }));
        Assert.That(map.GetNextKey(Key("192.168.0.0/8"), next), Is.EqualTo(0));
        Assert.That(next, Is.EqualTo(Key("192.168.0.0/16")), "no exact match: the first key");

        map.Update(Key("192.168.128.0/24"), U32(2));
        Assert.That(Walk(), Is.EqualTo(new[] { "192.168.128.0/24", "192.168.0.0/16" }));
        map.Update(Key("192.168.0.0/24"), U32(3));
        Assert.That(Walk(), Is.EqualTo(new[] { "192.168.0.0/24", "192.168.128.0/24", "192.168.0.0/16" }));
        map.Update(Key("192.168.1.0/24"), U32(4));
        Assert.That(Walk(), Is.EqualTo(new[] { "192.168.0.0/24", "192.168.1.0/24", "192.168.128.0/24", "192.168.0.0/16" }));
        map.Update(Key("192.168.1.128/28"), U32(5));
        Assert.That(Walk(), Is.EqualTo(new[] { "192.168.0.0/24", "192.168.1.128/28", "192.168.1.0/24", "192.168.128.0/24", "192.168.0.0/16" }));
        Assert.That(map.GetNextKey(Key("192.168.1.0/22"), next), Is.EqualTo(0));
        Assert.That(next, Is.EqualTo(Key("192.168.0.0/24")));
        Assert.That(map.GetNextKey(Key("192.168.0.0/16"), next), Is.EqualTo(-Errno.ENOENT));
    }

    [Test]
    public void TubularKeyLayout()
    {
        // struct addr { u32 prefixlen; u8 protocol; u16 port; u32 ip[4]; } packed: 23 bytes.
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 23, 8, 1_000_000, MapFlags.NoPrealloc, "bindings");
        Assert.That(map.MaxPrefixLength, Is.EqualTo(152));
        static byte[] K(int prefix, byte proto, ushort port, string ip)
        {
            var k = new byte[23];
            BitConverter.GetBytes(prefix).CopyTo(k, 0);
            k[4] = proto;
            BitConverter.GetBytes(port).CopyTo(k, 5);
            IPAddress.Parse(ip).MapToIPv6().GetAddressBytes().CopyTo(k, 7);
            return k;
        }
        // 1.2.3.0/24 any port (24 + 96 + 24 bits) and 1.2.3.4/32 port 80.
        map.Update(K(24 + 96 + 24, 6, 0, "1.2.3.0"), U64(1));
        map.Update(K(24 + 96 + 32, 6, 80, "1.2.3.4"), U64(2));
        var v = new byte[8];
        Assert.That(map.Lookup(K(152, 6, 80, "1.2.3.4"), v), Is.EqualTo(0));
        Assert.That(v[0], Is.EqualTo(2));
        Assert.That(map.Lookup(K(152, 6, 0, "1.2.3.9"), v), Is.EqualTo(0));
        Assert.That(v[0], Is.EqualTo(1));
        Assert.That(map.Lookup(K(152, 17, 0, "1.2.3.9"), v), Is.EqualTo(-Errno.ENOENT), "the protocol is part of the prefix");
    }

    /// <summary>Random inserts, deletes and lookups against a linear-scan model.</summary>
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void MatchesAReferenceModel(int seed)
    {
        var rng = new Random(seed);
        using var map = Create(4, max: 100_000);
        var model = new Dictionary<(uint Net, int Len), uint>();
        static uint Mask(int len) => len == 0 ? 0 : uint.MaxValue << (32 - len);
        static byte[] K(uint ip, int len) => [.. BitConverter.GetBytes(len), (byte)(ip >> 24), (byte)(ip >> 16), (byte)(ip >> 8), (byte)ip];
        uint RandomIp() => 0x0a000000u | (uint)rng.Next(0, 1 << 12) << 12 | (uint)rng.Next(0, 1 << 12);   // clustered in 10/8
        for (int step = 0; step < 6000; step++)
        {
            int len = rng.Next(0, 33);
            uint net = RandomIp() & Mask(len);
            if (rng.Next(4) == 0)
            {
                int expected = model.Remove((net, len)) ? 0 : -Errno.ENOENT;
                Assert.That(map.Delete(K(net, len)), Is.EqualTo(expected), $"delete {net:x8}/{len} at step {step}");
            }
            else
            {
                uint value = (uint)step;
                Assert.That(map.Update(K(net, len), U32(value)), Is.EqualTo(0));
                model[(net, len)] = value;
            }
            uint probe = RandomIp();
            var best = model.Where(e => (probe & Mask(e.Key.Len)) == e.Key.Net).OrderByDescending(e => e.Key.Len).Select(e => (uint?)e.Value).FirstOrDefault();
            var got = new byte[4];
            int r = map.Lookup(K(probe, 32), got);
            if (best == null) Assert.That(r, Is.EqualTo(-Errno.ENOENT), $"probe {probe:x8} at step {step}");
            else Assert.That((r, BitConverter.ToUInt32(got)), Is.EqualTo((0, best.Value)), $"probe {probe:x8} at step {step}");
        }
        Assert.That(map.Count, Is.EqualTo(model.Count));
        var walked = map.Keys().Select(k => ((uint)(k[4] << 24 | k[5] << 16 | k[6] << 8 | k[7]), BitConverter.ToInt32(k))).ToList();
        Assert.That(walked, Is.EquivalentTo(model.Keys), "next-key visits every prefix once");
    }

    const string LookupAddress = """
        stw [%r10-8], 32
        stxw [%r10-4], %r1
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -8
        call 1
        mov %r1, %r0
        mov %r0, 0
        jeq %r1, 0, out
        ldxw %r0, [%r1]
        out:
        exit
        """;

    [Test]
    public void ProgramLookup([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = Create(4);
        for (int i = 0; i < V4Table.Length; i++) map.Update(Key(V4Table[i]), U32((uint)i + 1));
        var run = Prepare(engine, LookupAddress, map);
        ulong Ip(string s) => BitConverter.ToUInt32(IPAddress.Parse(s).GetAddressBytes());
        Assert.Multiple(() =>
        {
            Assert.That(Run(run, Ip("10.1.2.3")), Is.EqualTo(5ul));
            Assert.That(Run(run, Ip("10.1.9.9")), Is.EqualTo(3ul));
            Assert.That(Run(run, Ip("8.8.8.8")), Is.EqualTo(1ul));
        });
    }
}
