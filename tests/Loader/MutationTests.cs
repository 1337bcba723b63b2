using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Loader;

/// <summary>
/// Corrupted objects: truncations at many lengths and byte flips at many offsets (fixed seed) must
/// either load or fail with a <see cref="BpfException"/>, never with another exception.
/// </summary>
public class MutationTests
{
    static IEnumerable<string> Names() => Corpus.Names();

    /// <summary>Mutants per object; BPFJIT_MUTATIONS raises it for a longer local fuzzing run.</summary>
    static int MutantCount => int.TryParse(Environment.GetEnvironmentVariable("BPFJIT_MUTATIONS"), out int n) && n > 0 ? n : 600;

    static void LoadOrBpfException(byte[] bytes, string what, ref int loaded, ref int rejected)
    {
        try
        {
            var spec = ObjectFile.Parse(bytes, what);
            // Touch everything a consumer would, so lazily computed data cannot throw later.
            foreach (var p in spec.Programs)
            {
                _ = Disassembler.Disassemble(p.Instructions);
                // What later stages rely on: symbolic map operands name real maps, local calls stay inside.
                for (int i = 0; i < p.Instructions.Length; i++)
                {
                    var ins = p.Instructions[i];
                    if (ins.IsLdImm64 && ins.Src is (byte)Ld64Source.MapIdx or (byte)Ld64Source.MapIdxValue)
                    {
                        Assert.That(ins.Imm, Is.InRange(0, spec.Maps.Count - 1), $"{what}: {p.Name}: map index at {i}");
                        if (ins.Src == (byte)Ld64Source.MapIdxValue)
                            Assert.That((uint)p.Instructions[i + 1].Imm, Is.LessThanOrEqualTo(spec.Maps[ins.Imm].ValueSize), $"{what}: value offset at {i}");
                    }
                    if ((ins.IsCall && ins.Src == (byte)CallKind.Local) || (ins.IsLdImm64 && ins.Src == (byte)Ld64Source.Func))
                        Assert.That(i + 1L + ins.Imm, Is.InRange(0L, p.Instructions.Length - 1L), $"{what}: {p.Name}: call target at {i}");
                    if (ins.IsLdImm64) i++;
                }
                foreach (var r in p.MapReferences) Assert.That(spec.Maps[r.MapIndex].Name, Is.EqualTo(r.MapName));
                foreach (var l in p.LineInfos) Assert.That(l.InstructionOffset, Is.InRange(0, p.Instructions.Length - 1));
            }
            loaded++;
        }
        catch (BpfException e)
        {
            Assert.That(e.Message, Does.StartWith(what), "errors name the file first");
            Assert.That(e.Message, Does.Not.Contain("\n"), "errors are one line");
            rejected++;
        }
        catch (ResultStateException)
        {
            throw;
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: {e.GetType().Name} escaped: {e.Message}\n{e.StackTrace}");
        }
    }

    [TestCaseSource(nameof(Names))]
    public void TruncationsLoadOrFailCleanly(string name)
    {
        var bytes = File.ReadAllBytes(Corpus.ObjectPath(name));
        int loaded = 0, rejected = 0;
        var lengths = new SortedSet<int>(Enumerable.Range(0, 80));
        for (int len = 0; len < bytes.Length; len += Math.Max(1, bytes.Length / 300)) lengths.Add(len);
        foreach (int len in lengths)
            LoadOrBpfException(bytes[..len], $"{name}.o[..{len}]", ref loaded, ref rejected);
        Assert.That(rejected, Is.GreaterThan(0), "a truncated object must be rejected");
        TestContext.Out.WriteLine($"{name}: {lengths.Count} truncations, {loaded} loaded, {rejected} rejected");
    }

    [TestCaseSource(nameof(Names))]
    public void ByteFlipsLoadOrFailCleanly(string name)
    {
        var original = File.ReadAllBytes(Corpus.ObjectPath(name));
        var rng = new Random(0x5eed + name.Length);
        int loaded = 0, rejected = 0;
        for (int n = 0; n < MutantCount; n++)
        {
            var bytes = original.ToArray();
            int flips = 1 + rng.Next(3);
            var at = new List<int>();
            for (int f = 0; f < flips; f++)
            {
                // Half of the flips hit the ELF and section headers, where damage is most interesting.
                int shoff = (int)BitConverter.ToUInt64(original, 40);
                int off = rng.Next(4) switch
                {
                    0 => rng.Next(64),
                    1 => shoff + rng.Next(Math.Max(1, original.Length - shoff)),
                    _ => rng.Next(original.Length),
                };
                off = Math.Min(off, original.Length - 1);
                bytes[off] ^= (byte)(1 << rng.Next(8));
                if (rng.Next(4) == 0) bytes[off] = (byte)rng.Next(256);
                at.Add(off);
            }
            LoadOrBpfException(bytes, $"{name}.o~{string.Join(",", at.Select(o => $"0x{o:x}"))}", ref loaded, ref rejected);
        }
        Assert.That(loaded + rejected, Is.EqualTo(MutantCount));
        TestContext.Out.WriteLine($"{name}: {MutantCount} mutants, {loaded} loaded, {rejected} rejected");
    }
}
