using BpfJit.Runtime.SkLookup;
using BpfJit.Verifier;

/// <summary>Installs the runtime's verifier once for the whole test assembly, as the bpfjit tool does.</summary>
[SetUpFixture]
public sealed class InstallVerifier
{
    [OneTimeSetUp]
    public void Install() => ProgramVerification.Verifier = new SkLookupProgramVerifier();
}
