using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>The level-2 log shows iterator slots and elements in the kernel's notation.</summary>
[TestFixture]
public class KfuncLogTests
{
    [Test]
    public void IteratorStateIsPrintedAsTheKernelPrintsIt()
    {
        var c = CorpusCase.All().Single(x => x.File == "25_kfuncs.txt" && x.Name.StartsWith("iter 1:", StringComparison.Ordinal));
        var r = BpfJit.Verifier.Verifier.Verify(c.Assemble(), new VerifierOptions
        {
            Helpers = SkLookupTestHelpers.Table, Maps = c.Maps, LogLevel = 2, KernelFunctions = c.KernelFunctions,
        });
        Assert.That(r.Accepted, Is.True, r.Log);
        // The kernel's notation for a queued iteration (the live kernel prints this state with other ids and depths).
        Assert.That(r.Log, Does.Contain("from 8 to 9: R0=rdonly_mem(id=2,ref_obj_id=1,sz=4) R6=0 R10=fp0 fp-8=iter_num(ref_id=1,state=active,depth=1) refs=1"));
        Assert.That(r.Log, Does.Contain("fp-8=iter_num(ref_id=1,state=active,depth=2) refs=1"));
    }
}
