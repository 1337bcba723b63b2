using System.Buffers.Binary;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Loader;

/// <summary>Targeted corruptions and unsupported features: each gives a one-line BpfObjectException with its location.</summary>
public class ObjectErrorTests
{
    static byte[] Bytes(string name) => File.ReadAllBytes(Corpus.ObjectPath(name));

    static BpfObjectException Fails(byte[] bytes, string name = "prog.o")
    {
        var e = Assert.Throws<BpfObjectException>(() => ObjectFile.Parse(bytes, name))!;
        Assert.That(e.Message, Does.StartWith(name + ": "));
        Assert.That(e.Message, Does.Not.Contain('\n'));
        Assert.That(e, Is.InstanceOf<BpfException>());
        return e;
    }

    /// <summary>The file offset of section <paramref name="index"/>'s header.</summary>
    static int HeaderOffset(byte[] bytes, int index) => (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(40)) + index * 64;

    [Test]
    public void NotAnElfFile()
    {
        Assert.That(Fails("hello world"u8.ToArray()).Message, Is.EqualTo("prog.o: offset 0x0: not an ELF file (bad magic)"));
        Assert.That(Fails([]).Reason, Does.Contain("bad magic"));
    }

    [Test]
    public void BigEndianIsRefused()
    {
        var b = Bytes("redir_port");
        b[5] = 2;
        var e = Fails(b);
        Assert.That(e.Reason, Does.Contain("big-endian"));
        Assert.That(e.Offset, Is.EqualTo(5));
    }

    [Test]
    public void OtherMachinesAndClassesAreRefused()
    {
        var b = Bytes("redir_port");
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(18), 62);
        Assert.That(Fails(b).Reason, Is.EqualTo("machine 62 is not eBPF (EM_BPF = 247)"));
        b = Bytes("redir_port");
        b[4] = 1;
        Assert.That(Fails(b).Reason, Does.Contain("32-bit"));
        b = Bytes("redir_port");
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(16), 2);
        Assert.That(Fails(b).Reason, Does.Contain("not a relocatable object"));
    }

    [Test]
    public void TruncatedFileNamesTheSectionTable()
    {
        var b = Bytes("redir_port");
        var e = Fails(b[..(b.Length / 2)]);
        Assert.That(e.Reason, Does.Contain("runs past the end of the file"));
    }

    [Test]
    public void RelocationIntoMissingSection()
    {
        var b = Bytes("redir_port");
        var elf = ElfFile.Parse(b, "x");
        var rel = elf.FindSection(".relsk_lookup")!;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(HeaderOffset(b, rel.Index) + 44), 0x7f);
        var e = Fails(b);
        Assert.That(e.Section, Is.EqualTo(".relsk_lookup"));
        Assert.That(e.Reason, Is.EqualTo("relocation section applies to missing section 127"));
    }

    [Test]
    public void RelocationToMissingSymbol()
    {
        var b = Bytes("redir_port");
        var elf = ElfFile.Parse(b, "x");
        var rel = elf.FindSection(".relsk_lookup")!;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)rel.FileOffset + 12), 0xffff);
        var e = Fails(b);
        Assert.That(e.Section, Is.EqualTo(".relsk_lookup"));
        Assert.That(e.Offset, Is.EqualTo(0));
        Assert.That(e.Reason, Does.Contain("refers to symbol 65535"));
    }

    [Test]
    public void SymbolInMissingSection()
    {
        var b = Bytes("redir_port");
        var elf = ElfFile.Parse(b, "x");
        var symtab = elf.Sections.Single(s => s.Type == ElfSectionType.SymTab);
        var sym = elf.Symbols.Single(s => s.Name == "redir_map");
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan((int)symtab.FileOffset + sym.Index * 24 + 6), 0x300);
        var e = Fails(b);
        Assert.That((e.Section, e.Offset), Is.EqualTo((".symtab", (long?)(sym.Index * 24))));
        Assert.That(e.Reason, Does.StartWith("symbol 'redir_map' is in section 768, which does not exist"));
    }

    [Test]
    public void UnknownRelocationTypeInCode()
    {
        var b = Bytes("redir_port");
        var elf = ElfFile.Parse(b, "x");
        var rel = elf.FindSection(".relsk_lookup")!;
        ulong target = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan((int)rel.FileOffset));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)rel.FileOffset + 8), 7);
        var e = Fails(b);
        Assert.That((e.Section, e.Offset), Is.EqualTo(("sk_lookup", (long?)(long)target)));
        Assert.That(e.Reason, Does.StartWith("unsupported relocation type 7 in code"));
    }

    [Test]
    public void UnknownRelocationTypeInData()
    {
        // .rel.BTF's first record with type 7 (undefined), then 0 (R_BPF_NONE): both refused, by type number.
        foreach (uint type in new uint[] { 7, 0 })
        {
            var b = Bytes("redir_port");
            var rel = ElfFile.Parse(b, "x").FindSection(".rel.BTF")!;
            ulong target = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan((int)rel.FileOffset));
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)rel.FileOffset + 8), type);
            var e = Fails(b);
            Assert.That((e.Section, e.Offset), Is.EqualTo((".BTF", (long?)(long)target)));
            Assert.That(e.Reason, Does.StartWith($"unsupported relocation type {(type == 0 ? "R_BPF_NONE" : "7")}"));
        }
    }

    [Test]
    public void RelocationOnTheWrongInstruction()
    {
        var b = Bytes("redir_port");
        var elf = ElfFile.Parse(b, "x");
        var rel = elf.FindSection(".relsk_lookup")!;
        // Move the map relocation onto the first instruction (not an ld_imm64).
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan((int)rel.FileOffset), 0);
        var e = Fails(b);
        Assert.That((e.Section, e.Offset), Is.EqualTo(("sk_lookup", (long?)0)));
        Assert.That(e.Reason, Does.Contain("neither ld_imm64 nor a call"));
    }

    [Test]
    public void PseudoLdImm64WithoutRelocation()
    {
        // Drop the map relocation and mark the ld_imm64 as a map index by hand: an object may not
        // bind maps itself, or a later stage would index a map that does not exist.
        var b = Bytes("redir_port");
        var elf = ElfFile.Parse(b, "x");
        var rel = elf.FindSection(".relsk_lookup")!;
        var code = elf.FindSection("sk_lookup")!;
        ulong at = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan((int)rel.FileOffset));
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(HeaderOffset(b, rel.Index) + 32), 0); // sh_size = 0
        b[(int)(code.FileOffset + at) + 1] |= 5 << 4;
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan((int)(code.FileOffset + at) + 4), 1000);
        var e = Fails(b);
        Assert.That((e.Section, e.Offset), Is.EqualTo(("sk_lookup", (long?)(long)at)));
        Assert.That(e.Reason, Does.Contain("ld_imm64 with src 5 (MapIdx) has no relocation"));
    }

    [Test]
    public void UnknownLegacyMapType()
    {
        var b = Bytes("legacy_maps");
        var elf = ElfFile.Parse(b, "x");
        var maps = elf.FindSection("maps")!;
        var sym = elf.Symbols.Single(s => s.Name == "legacy_sockets");
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)(maps.FileOffset + sym.Value)), 99);
        var e = Fails(b);
        Assert.That(e.Section, Is.EqualTo("maps"));
        Assert.That(e.Offset, Is.EqualTo((long)sym.Value));
        Assert.That(e.Reason, Is.EqualTo("map 'legacy_sockets': unknown map type 99"));
    }

    [Test]
    public void BtfOffsetsOutOfRange()
    {
        var b = Bytes("redir_port");
        var elf = ElfFile.Parse(b, "x");
        var btf = elf.FindSection(".BTF")!;
        var copy = b.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan((int)btf.FileOffset + 20), 0x7fffffff);
        var e = Fails(copy);
        Assert.That(e.Section, Is.EqualTo(".BTF"));
        Assert.That(e.Reason, Does.Contain("string section").And.Contain("runs past the end of .BTF"));

        // The first type's name offset points outside the string section.
        copy = b.ToArray();
        int hdrLen = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((int)btf.FileOffset + 4));
        int typeOff = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((int)btf.FileOffset + 8));
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan((int)btf.FileOffset + hdrLen + typeOff), 0xffffff);
        e = Fails(copy);
        Assert.That((e.Section, e.Offset), Is.EqualTo((".BTF", (long?)(hdrLen + typeOff))));
        Assert.That(e.Reason, Does.Contain("type id 1: name offset 16777215 is outside the string section"));
    }

    [Test]
    public void BtfExtWithBadInstructionOffset()
    {
        var b = Bytes("redir_port");
        var elf = ElfFile.Parse(b, "x");
        var ext = elf.FindSection(".BTF.ext")!;
        int at = (int)ext.FileOffset;
        int hdrLen = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at + 4));
        int lineOff = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at + 16));
        // line_info: record size, then section name and count, then the first record's insn_off.
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at + hdrLen + lineOff + 12), 3);
        var e = Fails(b);
        Assert.That(e.Section, Is.EqualTo(".BTF.ext"));
        Assert.That(e.Reason, Does.Contain("not a multiple of 8"));
    }

    [Test]
    public void MissingFile()
    {
        var e = Assert.Throws<BpfObjectException>(() => ObjectFile.Load("/nonexistent/prog.o"))!;
        Assert.That(e.Message, Does.StartWith("/nonexistent/prog.o: no such file"));
    }

    static string Other(string name) => Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", name + ".o");

    [Test]
    public void ExternKconfigIsUnsupported()
    {
        var e = Assert.Throws<BpfObjectException>(() => ObjectFile.Load(Other("extern_kconfig")))!;
        Assert.That(e.Section, Is.EqualTo("sk_lookup"));
        Assert.That(e.Reason, Does.Contain("program kconfig_prog: reference to undefined symbol 'LINUX_KERNEL_VERSION'"));
    }

    [Test]
    public void OtherProgramTypesAreRecognisedAndUnsupported()
    {
        var spec = ObjectFile.Load(Other("mixed_types"));
        var expected = new Dictionary<string, (ProgramType, AttachType?)>
        {
            ["xdp_prog"] = (ProgramType.Xdp, AttachType.Xdp),
            ["tc_prog"] = (ProgramType.SchedCls, null),
            ["classifier_prog"] = (ProgramType.SchedCls, null),
            ["socket_prog"] = (ProgramType.SocketFilter, null),
            ["kprobe_prog"] = (ProgramType.Kprobe, null),
            ["tracepoint_prog"] = (ProgramType.Tracepoint, null),
            ["cgroup_skb_prog"] = (ProgramType.CgroupSkb, AttachType.CgroupInetIngress),
            ["sk_msg_prog"] = (ProgramType.SkMsg, AttachType.SkMsgVerdict),
            ["sk_skb_prog"] = (ProgramType.SkSkb, AttachType.SkSkbStreamVerdict),
            ["reuseport_prog"] = (ProgramType.SkReuseport, AttachType.SkReuseportSelect),
            ["lookup_prog"] = (ProgramType.SkLookup, AttachType.SkLookup),
            ["not_lookup_prog"] = (ProgramType.Unspec, null),
            ["custom_prog"] = (ProgramType.Unspec, null),
        };
        Assert.That(spec.Programs.Select(p => p.Name), Is.EquivalentTo(expected.Keys));
        foreach (var p in spec.Programs)
        {
            Assert.That((p.Type, p.AttachType), Is.EqualTo(expected[p.Name]), p.Name);
            Assert.That(p.IsSupported, Is.EqualTo(p.Name is "lookup_prog" or "reuseport_prog"), p.Name);
            Assert.That(p.Notes.Count, Is.EqualTo(p.IsSupported ? 0 : 1), p.Name);
        }
        var custom = spec.Programs["custom_prog"];
        Assert.That(custom.SectionName, Is.EqualTo("custom/dispatcher"));
        Assert.That(custom.SetType(ProgramType.SkLookup, AttachType.SkLookup), Is.SameAs(custom));
        Assert.That(custom.IsSupported);
    }

    [TestCase("sk_lookup", ProgramType.SkLookup, AttachType.SkLookup)]
    [TestCase("sk_lookup/dispatcher", ProgramType.SkLookup, AttachType.SkLookup)]
    [TestCase("sk_lookup/a/b", ProgramType.SkLookup, AttachType.SkLookup)]
    [TestCase("sk_lookup/", ProgramType.Unspec, null)]
    [TestCase("sk_lookupx", ProgramType.Unspec, null)]
    [TestCase("sk_lookup_x", ProgramType.Unspec, null)]
    [TestCase("xdp", ProgramType.Xdp, AttachType.Xdp)]
    [TestCase("xdp.frags", ProgramType.Xdp, AttachType.Xdp)]
    [TestCase("tc", ProgramType.SchedCls, null)]
    [TestCase("classifier", ProgramType.SchedCls, null)]
    [TestCase("tcx/ingress", ProgramType.SchedCls, AttachType.TcxIngress)]
    [TestCase("socket", ProgramType.SocketFilter, null)]
    [TestCase("kprobe/do_sys_open", ProgramType.Kprobe, null)]
    [TestCase("kretprobe/do_sys_open", ProgramType.Kprobe, null)]
    [TestCase("tracepoint/net/netif_rx", ProgramType.Tracepoint, null)]
    [TestCase("raw_tp/sys_enter", ProgramType.RawTracepoint, null)]
    [TestCase("fentry/tcp_connect", ProgramType.Tracing, AttachType.TraceFentry)]
    [TestCase("lsm/file_open", ProgramType.Lsm, AttachType.LsmMac)]
    [TestCase("cgroup_skb/egress", ProgramType.CgroupSkb, AttachType.CgroupInetEgress)]
    [TestCase("cgroup/connect4", ProgramType.CgroupSockAddr, AttachType.CgroupInet4Connect)]
    [TestCase("sockops", ProgramType.SockOps, AttachType.CgroupSockOps)]
    [TestCase("sk_skb/stream_parser", ProgramType.SkSkb, AttachType.SkSkbStreamParser)]
    [TestCase("sk_msg", ProgramType.SkMsg, AttachType.SkMsgVerdict)]
    [TestCase("sk_reuseport", ProgramType.SkReuseport, AttachType.SkReuseportSelect)]
    [TestCase("flow_dissector", ProgramType.FlowDissector, AttachType.FlowDissector)]
    [TestCase(".text", ProgramType.Unspec, null)]
    [TestCase("my_section", ProgramType.Unspec, null)]
    public void SectionNamesFollowLibbpf(string section, ProgramType type, AttachType? attach)
    {
        Assert.That(SectionNames.Classify(section), Is.EqualTo((type, attach)));
    }

    [Test]
    public void KernelNumbering()
    {
        Assert.That((uint)ProgramType.SkLookup, Is.EqualTo(30));
        Assert.That((uint)AttachType.SkLookup, Is.EqualTo(36));
        Assert.That(new[] { MapType.Hash, MapType.Array, MapType.ProgArray, MapType.PerfEventArray, MapType.PerCpuHash, MapType.PerCpuArray,
            MapType.LruHash, MapType.LpmTrie, MapType.ArrayOfMaps, MapType.HashOfMaps, MapType.SockMap, MapType.SockHash,
            MapType.ReuseportSockArray, MapType.RingBuf }.Select(t => (uint)t),
            Is.EqualTo(new uint[] { 1, 2, 3, 4, 5, 6, 9, 11, 12, 13, 15, 18, 20, 27 }));
    }
}
