using System.Buffers.Binary;
using BpfJit.Frontend.Btf;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Loader;

/// <summary>The BTF parser on a hand-built blob holding every kind, and on the corpus.</summary>
public class BtfTests
{
    /// <summary>Writes a .BTF blob: header, types, strings.</summary>
    sealed class BtfBuilder
    {
        readonly List<byte> _types = [];
        readonly List<byte> _strings = [0];
        readonly Dictionary<string, uint> _offsets = new() { [""] = 0 };
        uint _next = 1;

        public uint Str(string s)
        {
            if (_offsets.TryGetValue(s, out uint off)) return off;
            off = (uint)_strings.Count;
            _strings.AddRange(System.Text.Encoding.UTF8.GetBytes(s));
            _strings.Add(0);
            return _offsets[s] = off;
        }

        void U32(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); _types.AddRange(b); }

        public uint Type(BtfKind kind, string name, int vlen, uint sizeOrType, bool kflag = false, params uint[] extra)
        {
            U32(Str(name));
            U32(((uint)kind << 24) | (uint)vlen | (kflag ? 1u << 31 : 0));
            U32(sizeOrType);
            foreach (var e in extra) U32(e);
            return _next++;
        }

        public byte[] Build()
        {
            var header = new byte[24];
            BinaryPrimitives.WriteUInt16LittleEndian(header, 0xeb9f);
            header[2] = 1;
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), 24);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), 0);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), (uint)_types.Count);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), (uint)_types.Count);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), (uint)_strings.Count);
            return [.. header, .. _types, .. _strings];
        }
    }

    [Test]
    public void EveryKindParses()
    {
        var b = new BtfBuilder();
        uint u32 = b.Type(BtfKind.Int, "unsigned int", 0, 4, false, 32);                         // 1
        uint s8 = b.Type(BtfKind.Int, "char", 0, 1, false, (1u << 24) | 8);                       // 2
        uint ptr = b.Type(BtfKind.Ptr, "", 0, u32);                                               // 3
        uint arr = b.Type(BtfKind.Array, "", 0, 0, false, s8, u32, 16);                           // 4
        uint st = b.Type(BtfKind.Struct, "addr", 3, 23, false,
            b.Str("prefixlen"), u32, 0, b.Str("ip"), arr, 56, b.Str("p"), ptr, 64);              // 5 (sizes need not add up)
        uint un = b.Type(BtfKind.Union, "u", 2, 4, true, b.Str("a"), u32, 0, b.Str("bits"), u32, (3u << 24) | 5); // 6
        uint en = b.Type(BtfKind.Enum, "e", 2, 4, true, b.Str("NEG"), unchecked((uint)-1), b.Str("ONE"), 1); // 7
        uint fwd = b.Type(BtfKind.Fwd, "later", 0, 0, true);                                     // 8
        uint td = b.Type(BtfKind.Typedef, "__u32", 0, u32);                                      // 9
        uint vol = b.Type(BtfKind.Volatile, "", 0, td);                                          // 10
        uint cst = b.Type(BtfKind.Const, "", 0, vol);                                            // 11
        uint rst = b.Type(BtfKind.Restrict, "", 0, ptr);                                         // 12
        uint proto = b.Type(BtfKind.FuncProto, "", 2, u32, false, b.Str("x"), td, 0, 0);          // 13 (variadic)
        uint fn = b.Type(BtfKind.Func, "f", 1, proto);                                           // 14
        uint var = b.Type(BtfKind.Var, "v", 0, cst, false, 1);                                   // 15
        uint ds = b.Type(BtfKind.Datasec, ".data", 1, 4, false, var, 0, 4);                      // 16
        uint fl = b.Type(BtfKind.Float, "double", 0, 8);                                         // 17
        uint tag = b.Type(BtfKind.DeclTag, "tag", 0, st, false, 1);                              // 18
        uint ttag = b.Type(BtfKind.TypeTag, "user", 0, u32);                                     // 19
        uint e64 = b.Type(BtfKind.Enum64, "big", 1, 8, false, b.Str("HUGE"), 0x89abcdef, 0x01234567); // 20

        var btf = BtfSpec.Parse(b.Build(), "t.o");
        Assert.That(btf.Types.Count, Is.EqualTo(21));
        Assert.That(btf.Types.Skip(1).Select(t => t.Kind).Distinct(), Is.EquivalentTo(Enum.GetValues<BtfKind>().Skip(1)), "every kind");
        Assert.That((btf.Type(s8).IntEncoding, btf.Type(s8).IntBits), Is.EqualTo((1, 8)));
        Assert.That((btf.Type(arr).ElementType, btf.Type(arr).IndexType, btf.Type(arr).ElementCount), Is.EqualTo((s8, u32, 16u)));
        Assert.That(btf.Type(st).Members.Select(m => (m.Name, m.BitOffset / 8)), Is.EqualTo(new[] { ("prefixlen", 0u), ("ip", 7u), ("p", 8u) }));
        Assert.That(btf.Type(un).Members[1], Is.EqualTo(new BtfMember("bits", u32, 5, 3)), "kind_flag bitfield encoding");
        Assert.That(btf.Type(en).EnumValues, Is.EqualTo(new[] { new BtfEnumValue("NEG", -1), new BtfEnumValue("ONE", 1) }));
        Assert.That(btf.Type(e64).EnumValues.Single().Value, Is.EqualTo(0x0123456789abcdefL));
        Assert.That(btf.Type(fwd).KindFlag);
        Assert.That(btf.Type(proto).Params, Is.EqualTo(new[] { new BtfParam("x", td), new BtfParam("", 0) }));
        Assert.That(btf.Type(fn).Linkage, Is.EqualTo(1u));
        Assert.That(btf.Type(var).Linkage, Is.EqualTo(1u));
        Assert.That(btf.Type(ds).Variables.Single(), Is.EqualTo(new BtfVarSecInfo(var, 0, 4)));
        Assert.That(btf.Type(tag).ComponentIndex, Is.EqualTo(1));
        Assert.That(btf.Datasec(".data")!.Id, Is.EqualTo(ds));

        // Naming and sizing.
        Assert.That(btf.TypeName(st), Is.EqualTo("struct addr"));
        Assert.That(btf.TypeName(un), Is.EqualTo("union u"));
        Assert.That(btf.TypeName(fwd), Is.EqualTo("union later"));
        Assert.That(btf.TypeName(cst), Is.EqualTo("const volatile __u32"));
        Assert.That(btf.TypeName(rst), Is.EqualTo("unsigned int * restrict"));
        Assert.That(btf.TypeName(arr), Is.EqualTo("char[16]"));
        Assert.That(btf.TypeName(proto), Is.EqualTo("unsigned int (*)(__u32, ...)"));
        Assert.That(btf.TypeName(ttag), Is.EqualTo("unsigned int"));
        Assert.That(btf.Size(cst), Is.EqualTo(4ul));
        Assert.That(btf.Size(ptr), Is.EqualTo(8ul));
        Assert.That(btf.Size(arr), Is.EqualTo(16ul));
        Assert.That(btf.Size(st), Is.EqualTo(23ul));
        Assert.That(btf.Size(var), Is.EqualTo(4ul));
        Assert.That(btf.Size(fl), Is.EqualTo(8ul));
        Assert.That(btf.Resolve(cst).Id, Is.EqualTo(u32));
        var e = Assert.Throws<BpfObjectException>(() => btf.Size(fn))!;
        Assert.That(e.Message, Is.EqualTo("t.o: section .BTF: type id 14 (FUNC 'f') has no size"));
        Assert.Throws<BpfObjectException>(() => btf.Type(99));
    }

    [Test]
    public void BadReferencesAndKindsAreErrors()
    {
        var b = new BtfBuilder();
        b.Type(BtfKind.Ptr, "", 0, 42);
        var e = Assert.Throws<BpfObjectException>(() => BtfSpec.Parse(b.Build(), "t.o"))!;
        Assert.That(e.Reason, Is.EqualTo("type id 1 (PTR ''): type refers to missing type id 42"));

        b = new BtfBuilder();
        b.Type((BtfKind)25, "x", 0, 0);
        e = Assert.Throws<BpfObjectException>(() => BtfSpec.Parse(b.Build(), "t.o"))!;
        Assert.That(e.Reason, Is.EqualTo("type id 1: unknown BTF kind 25"));

        b = new BtfBuilder();
        b.Type(BtfKind.Struct, "s", 2, 8, false, 0, 0, 0); // claims two members, has one
        e = Assert.Throws<BpfObjectException>(() => BtfSpec.Parse(b.Build(), "t.o"))!;
        Assert.That(e.Reason, Does.Contain("truncated"));

        // A typedef loop is reported, not followed forever.
        b = new BtfBuilder();
        b.Type(BtfKind.Typedef, "a", 0, 2);
        b.Type(BtfKind.Typedef, "b", 0, 1);
        var loop = BtfSpec.Parse(b.Build(), "t.o");
        Assert.That(Assert.Throws<BpfObjectException>(() => loop.Resolve(1))!.Reason, Does.Contain("a loop?"));

        var bytes = new BtfBuilder().Build();
        bytes[0] = 0xeb; bytes[1] = 0x9f;
        Assert.That(Assert.Throws<BpfObjectException>(() => BtfSpec.Parse(bytes, "t.o"))!.Reason, Does.Contain("big-endian"));
    }

    [Test]
    public void CorpusBtfNamesTheContextStruct()
    {
        var spec = Corpus.Load("narrow_ctx");
        var btf = spec.Btf!;
        var ctx = btf.FindByName("bpf_sk_lookup", BtfKind.Struct).Single();
        Assert.That(btf.Size(ctx.Id), Is.EqualTo(72ul), "struct bpf_sk_lookup is 72 bytes");
        Assert.That(ctx.Members.Where(m => m.Name.Length > 0).Select(m => (m.Name, m.BitOffset / 8)), Is.SupersetOf(new[]
        {
            ("family", 8u), ("protocol", 12u), ("remote_ip4", 16u), ("remote_ip6", 20u), ("remote_port", 36u),
            ("local_ip4", 40u), ("local_ip6", 44u), ("local_port", 60u), ("ingress_ifindex", 64u),
        }));
        var func = btf.FindByName("narrow_ctx", BtfKind.Func).Single();
        Assert.That(btf.TypeName(func.SizeOrType), Is.EqualTo("int (*)(struct bpf_sk_lookup *)"));
        Assert.That(btf.Ext!.LineInfos["sk_lookup"], Is.Not.Empty);
    }
}
