using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.Loader;
using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;
using BpfJit.IlEmitter;
using BpfJit.IlEmitter.Dump;
using BpfJit.IlEmitter.Hosting;
using BpfJit.Runtime;
using BpfJit.Runtime.Conformance;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Jit;

/// <summary>
/// The second target of the emitter: the persisted assembly. Its IL must decompile without the
/// decompiler's invalid-IL warnings for every conformance program, it must run exactly like the
/// DynamicMethod, and the IL listing must interleave every eBPF instruction with its IL.
/// </summary>
[TestFixture]
public class DumpTests
{
    static readonly string[] s_invalidIlWarnings = ["Stack underflow", "Incompatible stack heights", "Error", "Invalid", "Warning", "Unknown result type"];

    static IEnumerable<(string Name, ConformanceFile Test)> ConformancePrograms()
    {
        string dir = Paths.RequireShared("conformance");
        foreach (var file in Directory.GetFiles(dir, "*.data").Order(StringComparer.Ordinal))
        {
            var test = ConformanceFile.Load(file);
            if (test.Program != null) yield return (Path.GetFileNameWithoutExtension(file), test);
        }
    }

    static CompiledProgram? TryCompile(Instruction[] program)
    {
        try
        {
            return JitCompiler.Compile(program, HelperTable.Bench());
        }
        catch (BpfRuntimeException)
        {
            return null;   // a program no engine accepts (the test expects an error)
        }
    }

    /// <summary>All conformance programs the engines accept, compiled, with a method name each.</summary>
    static List<(string Method, ConformanceFile Test, CompiledProgram Compiled)> CompiledConformancePrograms() =>
        ConformancePrograms()
            .Select(p => (Method: "Run_" + p.Name.Replace('-', '_'), p.Test, Compiled: TryCompile(p.Test.Program!)))
            .Where(p => p.Compiled != null)
            .Select(p => (p.Method, p.Test, p.Compiled!))
            .ToList();

    [Test]
    public void EveryConformanceProgramDecompilesWithoutInvalidIlWarnings()
    {
        var programs = CompiledConformancePrograms();
        Assert.That(programs, Has.Count.GreaterThan(300));
        // One assembly with a method per program, decompiled at once (the decompiler's setup dominates).
        byte[] dll = PersistedAssemblyHost.Build(programs.Select(p => p.Compiled.ToPersisted(p.Method)).ToList(), out _);
        string cs = CSharpDump.Decompile(dll);
        var failures = new List<string>();
        foreach (var (method, _, _) in programs)
        {
            int start = cs.IndexOf($"static ulong {method}(JitClosure closure, ulong r1, ulong r2)", StringComparison.Ordinal);
            if (start < 0) { failures.Add($"{method}: not in the decompiled class"); continue; }
            int end = cs.IndexOf("static ulong Run_", start + 1, StringComparison.Ordinal);
            string body = end < 0 ? cs[start..] : cs[start..end];
            var found = s_invalidIlWarnings.Where(w => body.Contains(w, StringComparison.OrdinalIgnoreCase)).ToList();
            if (found.Count > 0) failures.Add($"{method}: {string.Join(", ", found)}\n{body}");
        }
        Assert.That(failures, Is.Empty, string.Join("\n\n", failures.Take(3)));
    }

    /// <summary>The check above can fail: IL with a stack underflow draws the decompiler's warning.</summary>
    [Test]
    public void DecompilerFlagsInvalidIl()
    {
        var assembly = new PersistedAssemblyBuilder(new AssemblyName("BpfJit.Dump"), typeof(object).Assembly);
        var type = assembly.DefineDynamicModule("BpfJit.Dump").DefineType("BpfJit.Dump.BpfProgram", TypeAttributes.Public | TypeAttributes.Class);
        var method = type.DefineMethod("Run", MethodAttributes.Public | MethodAttributes.Static, typeof(ulong), [typeof(JitClosure), typeof(ulong), typeof(ulong)]);
        var il = method.GetILGenerator();
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Add);   // one operand short
        il.Emit(OpCodes.Ret);
        type.CreateType();
        using var stream = new MemoryStream();
        assembly.Save(stream);
        string cs = CSharpDump.Decompile(stream.ToArray());
        Assert.That(s_invalidIlWarnings.Any(w => cs.Contains(w, StringComparison.OrdinalIgnoreCase)), cs);
    }

    [Test]
    public void PersistedAssemblyRunsLikeTheDynamicMethod()
    {
        var programs = CompiledConformancePrograms();
        byte[] dll = PersistedAssemblyHost.Build(programs.Select(p => p.Compiled.ToPersisted(p.Method)).ToList(), out _);
        var context = new AssemblyLoadContext("bpfjit-dump-test", isCollectible: true);
        try
        {
            var type = context.LoadFromStream(new MemoryStream(dll)).GetType(PersistedAssemblyHost.TypeName)!;
            foreach (var (method, test, compiled) in programs)
            {
                var entry = type.GetMethod(method)!.CreateDelegate<BpfEntry>(new JitClosure(HelperTable.Bench()));
                ulong fromDll = ConformanceRunner.RunWithMemory(entry, test.Memory);
                ulong fromJit = ConformanceRunner.RunWithMemory(compiled.Entry, test.Memory);
                Assert.That(fromDll, Is.EqualTo(fromJit), method);
                if (test.ExpectedResult is { } expected) Assert.That(fromDll, Is.EqualTo(expected), method);
            }
        }
        finally
        {
            context.Unload();
        }
    }

    [Test]
    public void SingleProgramAssemblyHasARunMethod()
    {
        var compiled = JitCompiler.Compile(Assembler.Assemble("mov %r0, 7\nexit"), HelperTable.Bench());
        string cs = compiled.GetCSharp();
        Assert.That(cs, Does.Contain("static ulong Run(JitClosure closure, ulong r1, ulong r2)"));
        Assert.That(cs, Does.Contain("return 7uL;").Or.Contain("= 7uL;"));
        string path = Path.Combine(Path.GetTempPath(), $"bpfjit-{Guid.NewGuid():N}.dll");
        try
        {
            compiled.SaveAssembly(path);
            using var module = Mono.Cecil.ModuleDefinition.ReadModule(path);
            Assert.That(module.GetType(PersistedAssemblyHost.TypeName).Methods.Select(m => m.Name), Does.Contain("Run"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void IlListingInterleavesEveryInstruction()
    {
        var program = Assembler.Assemble("""
            ldxw %r0, [%r1+8]
            lddw %r2, 0x1122334455667788
            jne %r0, 0, out
            mov %r0, %r2
            call local f
            out:
            exit
            f:
            stxdw [%r10-8], %r0
            exit
            """);
        string listing = JitCompiler.Compile(program, HelperTable.Bench()).GetIlListing();
        var headers = listing.Split('\n').Where(l => l.StartsWith(';')).Select(l => l.TrimEnd()).ToList();
        Assert.That(headers, Is.EqualTo(new[]
        {
            "; prologue",
            "; 0: r0 = *(u32 *)(r1 + 8)",
            "; 1: r2 = 0x1122334455667788 ll",
            "; 3: if r0 != 0x0 goto +2",
            "; 4: r0 = r2",
            "; 5: call pc+1",
            "; 6: exit",
            "; 7: *(u64 *)(r10 - 8) = r0",
            "; 8: exit",
            "; return from a bpf-to-bpf call (shared by every exit)",
        }).Using<string>((a, b) => string.CompareOrdinal(a, b)), listing);
        Assert.That(listing, Does.Contain("ldind.u4"));
        Assert.That(listing, Does.Contain("ldloca.s block"));
        Assert.That(listing, Does.Not.Contain("localloc"));
        Assert.That(listing, Does.Contain("switch"));
        Assert.That(listing, Does.Match(@"; 0: r0 = \*\(u32 \*\)\(r1 \+ 8\)\n  IL_[0-9a-f]{4}: ldloc\.1 // r1\n  IL_[0-9a-f]{4}: ldc\.i8 8\n"));
    }

    [Test]
    public void CompileErrorsNameTheInstruction()
    {
        var e = new BpfCompileException(5, "r0 = *(u32 *)(r1 + 8)", "unsupported");
        Assert.That(e.Message, Is.EqualTo("instruction 5 (r0 = *(u32 *)(r1 + 8)): unsupported"));
        Assert.That(e, Is.InstanceOf<BpfException>());
        Assert.That(e.Index, Is.EqualTo(5));
    }

    /// <summary>The emitter's stack tracking turns unbalanced IL into a compile error at the slot that left it.</summary>
    [Test]
    public void UnbalancedIlIsACompileErrorNotAnInvalidProgram()
    {
        var program = Assembler.Assemble("mov %r0, 1\nexit");
        var shape = IlEmitter.Emit.ProgramShape.Analyse(program);
        var method = new DynamicMethod("t", typeof(ulong), [typeof(JitClosure), typeof(ulong), typeof(ulong)]);
        var c = new IlEmitter.Emit.EmitContext(method.GetILGenerator(), shape, new Helper?[2], JitOptions.Default);
        c.BeginInstruction(0);
        c.LdReg(0);   // left on the stack
        var e = Assert.Throws<BpfCompileException>(() => c.BeginInstruction(1));
        Assert.That(e!.Message, Does.StartWith("instruction 0 (r0 = 1): internal emitter error"));
        var underflow = new IlEmitter.Emit.EmitContext(new DynamicMethod("u", typeof(void), []).GetILGenerator(), shape, new Helper?[2], JitOptions.Default);
        underflow.BeginInstruction(1);
        Assert.Throws<BpfCompileException>(() => underflow.StReg(0));
    }
}
