using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>bpf_spin_lock from a clang object: the loader finds the lock in the BTF value type and the verifier holds the program to the lock rules.</summary>
[TestFixture]
public class SpinLockTests
{
    static string ObjectPath => Path.Combine(Paths.RepoRoot, "tests", "scenarios", "progs", "spin_lock_loop.o");

    [Test]
    public void TheLoaderFindsTheLockInTheValueType()
    {
        var collection = ObjectFile.Load(ObjectPath);
        Assert.That(collection.Maps["counters"].SpinLockOffset, Is.EqualTo(0));
        Assert.That(collection.Maps["redir_map"].SpinLockOffset, Is.EqualTo(-1));
        var info = ObjectVerification.ToMapInfo(collection.Maps["counters"]);
        Assert.That((info.SpinLockOffset, info.HasBtf), Is.EqualTo((0, true)));
    }

    [Test]
    public void TheProgramVerifiesAndAnUnlockRemovedIsRejected()
    {
        var collection = ObjectFile.Load(ObjectPath);
        var program = collection.Programs["spin_lock_loop"];
        var helpers = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();
        Assert.That(ObjectVerification.Verify(collection, program, helpers).Accepted, Is.True);

        var code = program.Instructions.ToArray();
        int unlock = Array.FindIndex(code, i => i.IsCall && i.Src == 0 && i.Imm == 94);
        Assert.That(unlock, Is.GreaterThan(0));
        code[unlock] = code[unlock] with { Opcode = 0x05, Imm = 0 }; // ja +0
        var result = BpfJit.Verifier.Verifier.Verify(code, ObjectVerification.Options(collection, program, helpers));
        Assert.That(result.Accepted, Is.False);
        Assert.That(result.Error, Is.EqualTo("function calls are not allowed while holding a lock"));
    }
}
