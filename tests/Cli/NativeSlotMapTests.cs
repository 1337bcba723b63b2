using BpfJit.Cli.Output;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using static BpfJit.Cli.Output.NativeSlotMap;

namespace BpfJit.Tests.Cli;

/// <summary>
/// <c>dump --native</c>'s interleaving on synthetic maps: which slots each native instruction comes from, given
/// where each slot's IL starts and the runtime's IL-to-native map. Independent of the architecture, so the arm64
/// listing (Capstone, fixed bytes) is interleaved here too.
/// </summary>
public class NativeSlotMapTests
{
    // IL: prologue [0,5), slot 0 [5,9), slot 1 emits nothing, slot 2 [9,12), slot 3 [12,20), slot 4 [20,30), slot 5 [30,..).
    static readonly (int Slot, int IlOffset)[] s_markers = [(NativeTwin.PrologueSlot, 0), (0, 5), (1, 9), (2, 9), (3, 12), (4, 20), (5, 30)];

    static string Describe(Origin o) => $"{o.Offset}:{string.Join(",", o.Slots)}{(o.Part != null ? "+" + o.Part : "")}";

    [Test]
    public void EachInstructionGetsTheSlotsOfItsMapEntry()
    {
        // RyuJIT's map: prolog, IL 5 (slots 0..2: the next IL offset it names is 12), IL 12 (slots 3 and 4), code of
        // no IL offset, then the exit's IL and the epilog at one native offset.
        (int, int)[] map = [(Prolog, 0), (5, 4), (12, 10), (NoMapping, 16), (30, 20), (Epilog, 20)];
        var origins = Attribute([0, 2, 4, 8, 10, 14, 16, 18, 20, 22], s_markers, map);
        Assert.That(origins.Select(Describe), Is.EqualTo(new[]
        {
            "0:+prolog", "2:+prolog", "4:0,2", "8:0,2", "10:3,4", "14:3,4", "16:+unmapped", "18:+unmapped", "20:5+epilog", "22:5+epilog",
        }));
    }

    [Test]
    public void CodeBeforeTheFirstEntryIsUnmappedAndEntriesAtOneOffsetJoin()
    {
        // IL 5 and IL 12 both start at native 6: the code there comes from all of slots 0-4.
        (int, int)[] map = [(5, 6), (12, 6)];
        var origins = Attribute([0, 6, 9], s_markers, map);
        Assert.That(origins.Select(Describe), Is.EqualTo(new[] { "0:+unmapped", "6:0,2,3,4,5", "9:0,2,3,4,5" }));
    }

    [Test]
    public void AnUnrolledSlotIsNamedOnceAndTheEmittersPrologueByName()
    {
        // A loop body (slot 3) emitted twice, as an unrolled loop's copies are.
        (int Slot, int IlOffset)[] markers = [(NativeTwin.PrologueSlot, 0), (3, 4), (4, 8), (3, 12), (4, 16)];
        var origins = Attribute([0, 3, 7], markers, [(0, 0), (8, 3), (12, 7)]);
        Assert.That(origins.Select(Describe), Is.EqualTo(new[] { "0:-1,3", "3:4", "7:3,4" }));
        var program = Assembler.Assemble("mov %r0, 0\nmov %r0, 0\nmov %r0, 0\nadd %r0, 1\nadd %r0, 2\nexit");
        Assert.That(Headers(origins[0], program), Is.EqualTo(new[] { "; prologue", "; 3: r0 += 1" }));
    }

    [Test]
    public void AnArm64ListingIsInterleaved()
    {
        // stp x29, x30, [sp, #-16]!; mov x29, sp; add x0, x0, #7; ldp x29, x30, [sp], #16; ret
        byte[] code = [0xfd, 0x7b, 0xbf, 0xa9, 0xfd, 0x03, 0x00, 0x91, 0x00, 0x1c, 0x00, 0x91, 0xfd, 0x7b, 0xc1, 0xa8, 0xc0, 0x03, 0x5f, 0xd6];
        var program = Assembler.Assemble("add %r0, 7\nexit");
        string listing = Arm64Listing.Format(0, code);
        var offsets = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(Offset).ToList();
        Assert.That(offsets, Is.EqualTo(new[] { 0, 4, 8, 12, 16 }));
        var origins = Attribute(offsets, [(0, 0), (1, 3)], [(Prolog, 0), (0, 8), (3, 12), (Epilog, 12)]);
        var lines = Interleave(listing, origins, program).Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Select(l => l.StartsWith(';') ? l : l[..4]), Is.EqualTo(new[]
        {
            "; prolog (RyuJIT's frame setup)", "0000", "0004",
            "; 0: r0 += 7", "0008",
            "; 1: exit", "; epilog (RyuJIT's frame teardown)", "000c", "0010",
        }), string.Join("\n", lines));
    }

    [Test]
    public void ASlotNamedByTheGroupBeforeIsNotNamedAgain()
    {
        // IL 5 runs into slot 2 (the next entry is in its middle, IL 10): slot 2 is named once.
        (int, int)[] map = [(5, 0), (10, 4), (12, 8)];
        string listing = "0000: 90 nop\n0004: 90 nop\n0008: 90 nop\n";
        var program = Assembler.Assemble("mov %r0, 0\nmov %r0, 1\nmov %r0, 2\nmov %r0, 3\nmov %r0, 4\nexit");
        string text = NativeSlotMap.Interleave(listing, Attribute([0, 4, 8], s_markers, map), program);
        Assert.That(text.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[]
        {
            "; 0: r0 = 0", "; 2: r0 = 2", "0000: 90 nop", "0004: 90 nop", "; 3: r0 = 3", "; 4: r0 = 4", "; 5: exit", "0008: 90 nop",
        }));
    }

    [Test]
    public void LayoutsCompareByOffsetAndMnemonic()
    {
        string running = "0000: 55 push rbp\n0001: e8aabbccdd call 1234h\n0006: c3 ret\n";
        Assert.That(NativeDump.SameLayout(running, running, out string same), Is.True);
        Assert.That(same, Does.Contain("the same 3 instructions, byte for byte"));
        Assert.That(NativeDump.SameLayout(running, running.Replace("e8aabbccdd call 1234h", "e811223344 call 5678h"), out string operands), Is.True);
        Assert.That(operands, Does.Contain("1 differ in their operands' bytes"));
        Assert.That(NativeDump.SameLayout(running, running.Replace("c3 ret", "cc int3"), out string other), Is.False);
        Assert.That(other, Does.Contain("instruction 2: 'ret' at 0006 runs, 'int3' at 0006 in the other"));
        Assert.That(NativeDump.SameLayout(running, running + "0007: cc int3\n", out string longer), Is.False);
        Assert.That(longer, Is.EqualTo("3 instructions run, 4 in the other"));
    }
}
