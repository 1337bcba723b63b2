using BpfJit.Frontend;
using BpfJit.Frontend.Btf;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Loader;

/// <summary>What the loader finds in each corpus object: programs, types, maps, map references, debug info.</summary>
public class CorpusLoaderTests
{
    static IEnumerable<string> Names() => Corpus.Names();

    /// <summary>Helpers an SK_LOOKUP program may call (docs/sk-lookup.md 3.1) that the corpus uses (timer_counter: the bpf_timer ones; user_ringbuf_drain: the drain and bpf_dynptr_read).</summary>
    static readonly int[] s_corpusHelpers = [1, 2, 3, 6, 86, 124, 169, 170, 171, 201, 209];

    [Test]
    public void CorpusHasAtLeastTwelvePrograms()
    {
        Assert.That(Names().Count(), Is.GreaterThanOrEqualTo(12));
    }

    [TestCaseSource(nameof(Names))]
    public void EveryProgramIsSkLookupWithLicenseLinesAndValidCode(string name)
    {
        var spec = Corpus.Load(name);
        Assert.That(spec.Programs, Is.Not.Empty);
        Assert.That(spec.License, Is.Not.Empty);
        Assert.That(spec.Btf, Is.Not.Null);
        foreach (var p in spec.Programs)
        {
            Assert.That(p.Type, Is.EqualTo(ProgramType.SkLookup), p.Name);
            Assert.That(p.AttachType, Is.EqualTo(AttachType.SkLookup), p.Name);
            Assert.That(p.IsSupported, p.Name);
            Assert.That(p.License, Is.EqualTo(spec.License));
            Assert.That(p.SectionName == "sk_lookup" || p.SectionName.StartsWith("sk_lookup/"), p.SectionName);
            Assert.DoesNotThrow(() => Decoder.Validate(p.Instructions));
            Assert.That(p.Instructions[^1].IsExit || p.Functions.Count > 1, $"{p.Name} ends with exit");
            Assert.That(p.FuncInfos, Is.Not.Empty, "func_info");
            Assert.That(p.FuncInfos[0].InstructionOffset, Is.Zero);
            Assert.That(p.FuncInfos[0].Name, Is.EqualTo(p.Name));
            Assert.That(p.LineInfos, Is.Not.Empty, "line_info");
            Assert.That(p.LineInfos.All(l => l.InstructionOffset >= 0 && l.InstructionOffset < p.Instructions.Length));
            Assert.That(p.LineInfos.All(l => l.FileName.EndsWith(name + ".c") || l.FileName.EndsWith(".h")), "line info names the source");
            Assert.That(p.CoreRelocations, Is.Empty);
            Assert.That(p.Notes, Is.Empty);
            foreach (var ins in p.Instructions.Where(i => i.IsCall && i.Src == (byte)CallKind.Helper))
                Assert.That(s_corpusHelpers, Does.Contain(ins.Imm), $"{p.Name} calls helper {ins.Imm}");
            // Every map ld_imm64 is symbolic and named by a map reference.
            for (int i = 0; i < p.Instructions.Length; i++)
            {
                var ins = p.Instructions[i];
                if (!ins.IsLdImm64) continue;
                if (ins.Src is (byte)Ld64Source.MapIdx or (byte)Ld64Source.MapIdxValue)
                {
                    var r = p.MapReferences.Single(m => m.InstructionIndex == i);
                    Assert.That(ins.Imm, Is.EqualTo(r.MapIndex));
                    Assert.That(spec.Maps[r.MapIndex].Name, Is.EqualTo(r.MapName));
                    if (r.Kind == MapReferenceKind.Value)
                    {
                        Assert.That(p.Instructions[i + 1].Imm, Is.EqualTo((int)r.ValueOffset));
                        Assert.That(r.ValueOffset, Is.LessThan(spec.Maps[r.MapIndex].ValueSize));
                    }
                }
                i++;
            }
        }
    }

    [TestCaseSource(nameof(Names))]
    public void StackAccessesAreAlignedAndInBounds(string name)
    {
        // The kernel verifier enforces strict alignment on the stack; a corpus program that breaks it
        // (for example a u32 store into a packed struct) would be useless to the later stages.
        foreach (var p in Corpus.Load(name).Programs)
        {
            for (int i = 0; i < p.Instructions.Length; i++)
            {
                var ins = p.Instructions[i];
                if (ins.IsLdImm64) { i++; continue; }
                bool stack = ins.Class switch
                {
                    InstructionClass.Ldx => ins.Src == 10,
                    InstructionClass.St or InstructionClass.Stx => ins.Dst == 10,
                    _ => false,
                };
                if (!stack) continue;
                int size = Op.Bytes(ins.MemSize);
                Assert.That(ins.Offset % size, Is.Zero, $"{p.Name}: instruction {i}: {Disassembler.Format(p.Instructions, i)}");
                Assert.That((int)ins.Offset, Is.InRange(-512, -size), $"{p.Name}: instruction {i}");
            }
        }
    }

    [TestCase("redir_port", "redir_port", "sk_lookup", "Dual BSD/GPL")]
    [TestCase("redir_ip4", "redir_ip4", "sk_lookup", "Dual BSD/GPL")]
    [TestCase("redir_ip6", "redir_ip6", "sk_lookup", "Dual BSD/GPL")]
    [TestCase("dispatcher", "dispatcher", "sk_lookup/dispatcher", "BSD-3-Clause")]
    [TestCase("sockhash_tuple", "sockhash_tuple", "sk_lookup", "GPL")]
    [TestCase("narrow_ctx", "narrow_ctx", "sk_lookup", "GPL")]
    [TestCase("hash_counter", "hash_counter", "sk_lookup", "GPL")]
    public void SingleProgramObjects(string obj, string program, string section, string license)
    {
        var spec = Corpus.Load(obj);
        Assert.That(spec.Programs.Select(p => p.Name), Is.EqualTo(new[] { program }));
        Assert.That(spec.Programs[program].SectionName, Is.EqualTo(section));
        Assert.That(spec.License, Is.EqualTo(license));
    }

    [Test]
    public void SockmapRedirectMap()
    {
        var spec = Corpus.Load("redir_port");
        var m = spec.Maps.Single();
        Assert.That((m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags), Is.EqualTo(("redir_map", MapType.SockMap, 4u, 8u, 32u, 0u)));
        Assert.That(m.Source, Is.EqualTo(MapSource.BtfMaps));
        Assert.That(spec.Btf!.TypeName(m.BtfKeyTypeId), Is.EqualTo("__u32"));
        Assert.That(spec.Btf.TypeName(m.BtfValueTypeId), Is.EqualTo("__u64"));
        var p = spec.Programs.Single();
        Assert.That(p.MapReferences.Select(r => (r.MapName, r.Kind)), Is.EqualTo(new[] { ("redir_map", MapReferenceKind.Map) }));
        Assert.That(p.Instructions.Count(i => i.IsCall && i.Imm == 124), Is.EqualTo(1), "one bpf_sk_assign");
        Assert.That(p.Instructions.Count(i => i.IsCall && i.Imm == 86), Is.EqualTo(1), "one bpf_sk_release");
    }

    [Test]
    public void DispatcherMapsMatchTubular()
    {
        var spec = Corpus.Load("dispatcher");
        var expected = new (string Name, MapType Type, uint Key, uint Value, uint Max, uint Flags)[]
        {
            ("bindings", MapType.LpmTrie, 23, 8, 1_000_000, 1),
            ("sockets", MapType.SockMap, 4, 8, 1024, 0),
            ("destinations", MapType.Hash, 0, 0, 1024, 0),
            ("destination_metrics", MapType.PerCpuArray, 4, 24, 1024, 0),
        };
        Assert.That(spec.Maps.Count, Is.EqualTo(4));
        foreach (var e in expected)
        {
            var m = spec.Maps[e.Name];
            Assert.That((m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags), Is.EqualTo((e.Type, e.Key, e.Value, e.Max, e.Flags)), e.Name);
            Assert.That(m.Pinning, Is.EqualTo(PinType.ByName), e.Name);
        }
        Assert.That(spec.Btf!.TypeName(spec.Maps["bindings"].BtfKeyTypeId), Is.EqualTo("struct addr"));
        Assert.That(spec.Btf.TypeName(spec.Maps["bindings"].BtfValueTypeId), Is.EqualTo("struct binding"));
        var addr = spec.Btf.Resolve(spec.Maps["bindings"].BtfKeyTypeId);
        Assert.That(addr.Members.Select(m => (m.Name, m.BitOffset / 8)),
            Is.EqualTo(new[] { ("prefixlen", 0u), ("protocol", 4u), ("port", 5u), ("ip", 7u) }), "packed key layout");

        var p = spec.Programs["dispatcher"];
        Assert.That(p.MapReferences.Select(r => r.MapName).Distinct().Order(),
            Is.EqualTo(new[] { "bindings", "destination_metrics", "sockets" }));
        Assert.That(p.MapReferences.Count(r => r.MapName == "bindings"), Is.EqualTo(2), "exact-port and wildcard lookups");
    }

    [Test]
    public void ZeroSizedMapCanBeFixedUpBeforeLoading()
    {
        var spec = Corpus.Load("dispatcher");
        var destinations = spec.Maps["destinations"];
        Assert.That((destinations.KeySize, destinations.ValueSize), Is.EqualTo((0u, 0u)));
        Assert.That(destinations.WithSizes(257, 8), Is.SameAs(destinations));
        spec.Maps["destinations"].ValueSize = 8;
        Assert.That((spec.Maps["destinations"].KeySize, spec.Maps["destinations"].ValueSize), Is.EqualTo((257u, 8u)));
        var copy = destinations.Clone();
        copy.KeySize = 1;
        Assert.That(destinations.KeySize, Is.EqualTo(257u), "Clone copies");
        Assert.Throws<KeyNotFoundException>(() => _ = spec.Maps["nope"]);
    }

    [Test]
    public void MultiProgramObjectHasThreeSections()
    {
        var spec = Corpus.Load("multi_prog");
        Assert.That(spec.Programs.Select(p => (p.Name, p.SectionName)), Is.EqualTo(new[]
        {
            ("multi_pass", "sk_lookup/pass"), ("multi_drop", "sk_lookup/drop"), ("multi_redir", "sk_lookup/redir"),
        }));
        Assert.That(spec.Maps.Select(m => m.Name), Is.EqualTo(new[] { "redir_map", "run_map" }));
        // Every program returns a constant verdict just before exit, except redirect which may fall through.
        Assert.That(spec.Programs["multi_drop"].MapReferences.Single().MapName, Is.EqualTo("run_map"));
        Assert.That(spec.Programs["multi_redir"].MapReferences.Select(r => r.MapName), Is.EqualTo(new[] { "redir_map", "run_map" }));
    }

    [Test]
    public void NarrowContextLoadsCoverEveryField()
    {
        var p = Corpus.Load("narrow_ctx").Programs.Single();
        // The program makes no calls and keeps nothing on the stack but loads ctx, so every load
        // not based on r10 is a context load.
        var loads = p.Instructions.Where(i => i.Class == InstructionClass.Ldx && i.Src != 10)
            .Select(i => (Op.Bytes(i.MemSize), (int)i.Offset)).ToHashSet();
        for (int field = 8; field < 68; field += 4)
        {
            if (field == 36)
            {
                foreach (var l in new[] { (1, 36), (1, 37), (1, 38), (1, 39), (2, 36), (2, 38), (4, 36) })
                    Assert.That(loads, Does.Contain(l), $"remote_port/pad load {l}");
                continue;
            }
            foreach (var l in new[] { (1, field), (1, field + 1), (1, field + 2), (1, field + 3), (2, field), (2, field + 2), (4, field) })
                Assert.That(loads, Does.Contain(l), $"load {l}");
        }
        Assert.That(loads.All(l => l.Item2 >= 8 && l.Item2 < 68 && l.Item1 <= 4), "no load of sk or past the end");
    }

    [Test]
    public void GlobalDataSectionsBecomeSingleEntryArrays()
    {
        var spec = Corpus.Load("global_data");
        Assert.That(spec.Maps.Select(m => m.Name), Is.EquivalentTo(new[] { ".rodata", ".data", ".data.config", ".bss" }));
        foreach (var m in spec.Maps)
        {
            Assert.That((m.Type, m.KeySize, m.MaxEntries, m.Source), Is.EqualTo((MapType.Array, 4u, 1u, MapSource.GlobalData)), m.Name);
            // .bss has no bytes in the file: its initial value is empty (the map starts zeroed).
            Assert.That(m.InitialValue, Has.Length.EqualTo(m.Name == ".bss" ? 0 : (int)m.ValueSize), m.Name);
            Assert.That(m.Frozen, Is.EqualTo(m.Name == ".rodata"), m.Name);
            Assert.That((m.Flags & MapSpec.FlagReadOnlyProgram) != 0, Is.EqualTo(m.Name == ".rodata"), m.Name);
            Assert.That(spec.Btf!.Type(m.BtfValueTypeId).Kind, Is.EqualTo(BtfKind.Datasec), m.Name);
        }
        var rodata = spec.Maps[".rodata"].InitialValue!;
        Assert.That(BitConverter.ToUInt32(rodata, 0), Is.EqualTo(7007u), "target_port");
        Assert.That(BitConverter.ToUInt32(rodata, 4), Is.EqualTo(0x0100007fu), "target_ip4");
        Assert.That(System.Text.Encoding.ASCII.GetString(rodata), Does.Contain("lookup %u port %u").And.Contain("match"), "bpf_printk formats");
        var data = spec.Maps[".data"].InitialValue!;
        Assert.That(BitConverter.ToUInt32(data, 0), Is.EqualTo(1u), "verdict_on_match = SK_PASS");
        Assert.That(Enumerable.Range(0, 4).Select(i => BitConverter.ToUInt64(data, 8 + 8 * i)), Is.EqualTo(new ulong[] { 1, 2, 3, 4 }));
        Assert.That(BitConverter.ToUInt32(spec.Maps[".data.config"].InitialValue!, 0), Is.EqualTo(16u));
        Assert.That(spec.Maps[".bss"].InitialValue, Is.Empty);

        // Each variable reference points at the variable's symbol offset. (clang leaves the DATASEC
        // offsets at 0 in objects; libbpf fills them in from the symbols, so the symbol is the truth.)
        var elf = ElfFile.Parse(File.ReadAllBytes(Corpus.ObjectPath("global_data")), "global_data.o");
        var p = spec.Programs.Single();
        var varRefs = p.MapReferences.Where(r => !r.SymbolName.StartsWith('.')).ToList();
        Assert.That(varRefs.Select(r => r.SymbolName).Distinct(), Is.SupersetOf(new[] { "lookups", "matches", "seen_ports", "sample_rate", "target_port", "target_ip4", "verdict_on_match" }));
        foreach (var r in varRefs)
        {
            var sym = elf.Symbols.Single(x => x.Name == r.SymbolName);
            Assert.That(elf.SectionOf(sym)!.Name, Is.EqualTo(r.MapName), r.SymbolName);
            Assert.That(r.ValueOffset, Is.EqualTo(sym.Value), r.SymbolName);
            var datasec = spec.Btf!.Datasec(r.MapName)!;
            Assert.That(datasec.Variables.Any(x => spec.Btf.Type(x.TypeId).Name == r.SymbolName), $"DATASEC {r.MapName} lists {r.SymbolName}");
            Assert.That(r.Kind, Is.EqualTo(MapReferenceKind.Value));
        }
        Assert.That(p.Instructions.Count(i => i.IsCall && i.Imm == 6), Is.EqualTo(2), "two bpf_printk (trace_printk) calls");
        // bpf_printk's format string is referenced through the .rodata section symbol plus an offset.
        Assert.That(p.MapReferences.Where(r => r.SymbolName == ".rodata").Select(r => r.ValueOffset),
            Is.All.GreaterThanOrEqualTo(8u));
    }

    [Test]
    public void BoundedLoopKeepsItsBackwardJumpAndRodataCst()
    {
        var spec = Corpus.Load("bounded_loop");
        var p = spec.Programs.Single();
        Assert.That(p.Instructions.Any(i => i.IsBranch && i.BranchOffset < 0), "a backward jump");
        var m = spec.Maps.Single();
        Assert.That(m.Name, Does.StartWith(".rodata."));
        Assert.That(m.Frozen);
        var ports = Enumerable.Range(0, 8).Select(i => BitConverter.ToUInt16(m.InitialValue!, 2 * i));
        Assert.That(ports, Is.EqualTo(new ushort[] { 21, 23, 25, 110, 135, 139, 445, 3389 }));
    }

    [Test]
    public void SubprogramsAreAppendedAndCallsFixed()
    {
        var spec = Corpus.Load("subprog_calls");
        var hash = spec.Programs["subprog_hash"];
        Assert.That(hash.Functions.Select(f => f.Name), Is.EqualTo(new[] { "subprog_hash", "is_privileged_port", "hash_addr", "hash_u32" }));
        Assert.That(hash.Functions.Skip(1).All(f => f.SectionName == ".text"));
        var port = spec.Programs["subprog_port"];
        Assert.That(port.Functions.Select(f => f.Name), Is.EqualTo(new[] { "subprog_port", "is_privileged_port" }));
        Assert.That(spec.Programs.Select(p => p.Name), Is.EqualTo(new[] { "subprog_hash", "subprog_port" }), ".text yields no program");

        foreach (var p in new[] { hash, port })
        {
            Assert.That(p.Instructions.Length, Is.EqualTo(p.Functions.Sum(f => f.Length)));
            Assert.That(p.FuncInfos.Select(f => (f.InstructionOffset, f.Name)),
                Is.EqualTo(p.Functions.Select(f => (f.InstructionIndex, f.Name))), "func_info follows the linked layout");
            var starts = p.Functions.ToDictionary(f => f.InstructionIndex, f => f.Name);
            for (int i = 0; i < p.Instructions.Length; i++)
            {
                var ins = p.Instructions[i];
                if (ins.IsCall && ins.Src == (byte)CallKind.Local)
                    Assert.That(starts.ContainsKey(i + 1 + ins.Imm), $"{p.Name}: call at {i} lands on a function start");
            }
        }
        // hash_addr calls hash_u32 twice; both land on the same appended copy.
        var hashU32 = hash.Functions.Single(f => f.Name == "hash_u32").InstructionIndex;
        var addr = hash.Functions.Single(f => f.Name == "hash_addr");
        var calls = Enumerable.Range(addr.InstructionIndex, addr.Length).Where(i => hash.Instructions[i].IsCall).ToList();
        Assert.That(calls.Select(i => i + 1 + hash.Instructions[i].Imm), Is.EqualTo(new[] { hashU32, hashU32 }));
    }

    [Test]
    public void LegacyMapsAndVersion()
    {
        var spec = Corpus.Load("legacy_maps");
        Assert.That(spec.KernelVersion, Is.EqualTo(0x050a00u));
        Assert.That(spec.Programs.Single().KernelVersion, Is.EqualTo(0x050a00u));
        var sockets = spec.Maps["legacy_sockets"];
        var hits = spec.Maps["legacy_hits"];
        Assert.That((sockets.Type, sockets.KeySize, sockets.ValueSize, sockets.MaxEntries, sockets.Source), Is.EqualTo((MapType.SockMap, 4u, 8u, 16u, MapSource.LegacyMaps)));
        Assert.That((hits.Type, hits.KeySize, hits.ValueSize, hits.MaxEntries), Is.EqualTo((MapType.PerCpuArray, 4u, 8u, 1u)));
        Assert.That(spec.Programs.Single().MapReferences.Select(r => r.MapName), Is.EquivalentTo(new[] { "legacy_hits", "legacy_sockets" }));
    }

    [Test]
    public void HashCounterUsesAtomicAdd()
    {
        var spec = Corpus.Load("hash_counter");
        var m = spec.Maps.Single();
        Assert.That((m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries), Is.EqualTo(("counters", MapType.Hash, 8u, 8u, 4096u)));
        Assert.That(spec.Btf!.TypeName(m.BtfKeyTypeId), Is.EqualTo("struct port_key"));
        Assert.That(spec.Programs.Single().Instructions.Any(i => i.Class == InstructionClass.Stx && i.MemMode == MemMode.Atomic));
    }

    [Test]
    public void SockhashKeyedByTuple()
    {
        var spec = Corpus.Load("sockhash_tuple");
        var m = spec.Maps.Single();
        Assert.That((m.Type, m.KeySize, m.ValueSize), Is.EqualTo((MapType.SockHash, 40u, 8u)));
        Assert.That(spec.Btf!.TypeName(m.BtfKeyTypeId), Is.EqualTo("struct tuple"));
    }

    [Test]
    public void SkAssignIsCalledWithEveryFlagAndNull()
    {
        var p = Corpus.Load("sk_assign_flags").Programs.Single();
        var flags = new HashSet<int>();
        bool sawNull = false;
        for (int i = 0; i < p.Instructions.Length; i++)
        {
            if (!(p.Instructions[i].IsCall && p.Instructions[i].Imm == 124)) continue;
            // The last constant moved into r3 (flags) and r2 (socket) before the call.
            for (int j = i - 1; j >= 0 && j >= i - 6; j--)
            {
                var ins = p.Instructions[j];
                if (ins.Opcode is 0xb7 or 0xb4 && ins.Dst == 3) { flags.Add(ins.Imm); break; }
            }
            for (int j = i - 1; j >= 0 && j >= i - 6; j--)
            {
                var ins = p.Instructions[j];
                if (ins.Opcode is 0xb7 or 0xb4 && ins.Dst == 2 && ins.Imm == 0) { sawNull = true; break; }
                if (ins.Dst == 2) break;
            }
        }
        Assert.That(flags, Is.SupersetOf(new[] { 0, 1, 3, 4 }), "flags 0, F_REPLACE, F_REPLACE|F_NO_REUSEPORT and an invalid flag");
        Assert.That(sawNull, "bpf_sk_assign(ctx, NULL, ...)");
    }

    [Test]
    public void CtxSkFieldsReadThroughTheSelectedSocket()
    {
        var p = Corpus.Load("ctx_sk_fields").Programs.Single();
        Assert.That(p.Instructions.Any(i => i.Class == InstructionClass.Ldx && i.MemSize == MemSize.DW && i.Offset == 0), "ctx->sk is an 8-byte load at 0");
        // Narrow loads at these offsets can only be struct bpf_sock reads (ctx allows only an 8-byte load at 0..7).
        var sockOffsets = p.Instructions.Where(i => i.Class == InstructionClass.Ldx && i.Src != 10 && i.MemSize != MemSize.DW)
            .Select(i => (int)i.Offset).ToHashSet();
        Assert.That(sockOffsets, Is.SupersetOf(new[] { 0, 4, 8, 12, 16, 20, 24, 40, 44, 48, 52, 56, 72, 76 }), "struct bpf_sock fields");
    }
}
