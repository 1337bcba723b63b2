using BpfJit.Cli;
using BpfJit.Runtime.SkLookup;
using BpfJit.Verifier;

// Programs from objects are verified before the runtime binds and runs them.
ProgramVerification.Verifier = new SkLookupProgramVerifier();
return Cli.Run(args, Console.Out, Console.Error);
