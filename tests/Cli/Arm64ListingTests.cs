using System.Buffers.Binary;
using BpfJit.Cli.Output;

namespace BpfJit.Tests.Cli;

/// <summary>
/// <c>dump --native</c>'s arm64 path on fixed bytes (this host may be x86-64): Capstone's listing, the method's
/// extent found by following branches, and a precode stub followed to the code.
/// </summary>
public class Arm64ListingTests
{
    /// <summary>Little-endian memory at fake addresses: each word at <c>start + 4 * i</c>.</summary>
    static Func<ulong, int, byte[]> Memory(ulong start, params uint[] words)
    {
        var bytes = new byte[words.Length * 4];
        for (int i = 0; i < words.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4 * i), words[i]);
        return (address, length) =>
        {
            if (address < start || address + (ulong)length > start + (ulong)bytes.Length)
                throw new ArgumentOutOfRangeException(nameof(address), $"0x{address:x} is outside the fixed bytes");
            return bytes.AsSpan((int)(address - start), length).ToArray();
        };
    }

    const uint Ret = 0xD65F03C0;         // ret
    const uint AddX0Imm7 = 0x91001C00;   // add x0, x0, #7
    const uint CbzX0Plus12 = 0xB4000060; // cbz x0, .+12
    const uint MovX0Imm1 = 0xD2800020;   // mov x0, #1
    const uint Garbage = 0xFFFFFFFF;

    [Test]
    public void CapstoneListsArm64InTheToolsFormat()
    {
        // stp x29, x30, [sp, #-16]!; mov x29, sp; add x0, x0, #7; ldp x29, x30, [sp], #16; ret
        byte[] code = [0xfd, 0x7b, 0xbf, 0xa9, 0xfd, 0x03, 0x00, 0x91, 0x00, 0x1c, 0x00, 0x91, 0xfd, 0x7b, 0xc1, 0xa8, 0xc0, 0x03, 0x5f, 0xd6];
        var lines = Arm64Listing.Format(0, code).Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(5), string.Join("\n", lines));
        Assert.That(lines[0], Does.StartWith("0000: fd7bbfa9").And.EndWith("stp     x29, x30, [sp, #-0x10]!"));
        Assert.That(lines[2], Does.StartWith("0008: 001c0091").And.EndWith("add     x0, x0, #7"));
        Assert.That(lines[4], Does.StartWith("0010: c0035fd6").And.EndWith("ret"));
    }

    [Test]
    public void AWordThatIsNoInstructionIsShownAndDecodingGoesOn()
    {
        byte[] code = [0x00, 0x00, 0x00, 0x00, 0xc0, 0x03, 0x5f, 0xd6];   // udf #0 (or data), then ret
        var lines = Arm64Listing.Format(0, code).Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(2));
        Assert.That(lines[1], Does.StartWith("0004: ").And.EndWith("ret"));
    }

    [Test]
    public void TheMethodEndsAtTheReturnPastTheFurthestBranchTarget()
    {
        // The first ret is not the end: cbz jumps past it to a second path.
        var read = Memory(0x1000, CbzX0Plus12, AddX0Imm7, Ret, MovX0Imm1, Ret, Garbage, Garbage);
        byte[] code = Arm64Listing.MethodBytes(read, 0x1000);
        Assert.That(code, Has.Length.EqualTo(20));
        Assert.That(Arm64Listing.Format(0x1000, code), Does.Contain("000c: 200080d2").And.Contain("cbz     x0, #0x100c"));
    }

    [Test]
    public void APrecodeStubIsFollowedToTheCode()
    {
        // ldr x9, .+8; br x9; then the 8-byte literal: the code's address.
        var stub = Memory(0x2000, 0x58000049, 0xD61F0120, 0x1000, 0);
        var code = Memory(0x1000, CbzX0Plus12);
        Func<ulong, int, byte[]> read = (a, n) => a >= 0x2000 ? stub(a, n) : code(a, n);
        Assert.That(Arm64Listing.FollowStubs(read, 0x2000), Is.EqualTo(0x1000UL));
        Assert.That(Arm64Listing.FollowStubs(read, 0x1000), Is.EqualTo(0x1000UL), "code that is no stub is the code");
    }
}
