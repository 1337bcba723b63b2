using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Jit;

/// <summary>
/// Compiled programs are named as the kernel names its JIT images (<see cref="ProgramSymbol"/>):
/// <c>bpf_prog_&lt;tag&gt;_&lt;name&gt;</c>, the name cut to 15 characters of [A-Za-z0-9_.]; callbacks compiled as
/// methods of their own get the program's symbol and <c>_F&lt;subprogram index&gt;</c>.
/// </summary>
[TestFixture]
public class ProgramSymbolTests
{
    [Test]
    public void NamesAreKeptAsTheKernelKeepsThem()
    {
        Assert.That(ProgramSymbol.ObjName("dispatcher"), Is.EqualTo("dispatcher"));
        Assert.That(ProgramSymbol.ObjName("loop_and_callback_prog"), Is.EqualTo("loop_and_callba"), "BPF_OBJ_NAME_LEN 16: 15 characters and the NUL");
        Assert.That(ProgramSymbol.ObjName("sk-lookup/v1.2 x"), Is.EqualTo("sklookupv1.2x"), "only [A-Za-z0-9_.] is kept");
        Assert.That(ProgramSymbol.ObjName(null), Is.Empty);
        Assert.That(ProgramSymbol.Of("0123456789abcdef", "dispatcher"), Is.EqualTo("bpf_prog_0123456789abcdef_dispatcher"));
        Assert.That(ProgramSymbol.Of("0123456789abcdef", "-/"), Is.EqualTo("bpf_prog_0123456789abcdef"), "no name: the tag alone, as bpf_get_prog_name");
        Assert.That(ProgramSymbol.Subprogram("bpf_prog_0123456789abcdef_x", 2), Is.EqualTo("bpf_prog_0123456789abcdef_x_F2"));
    }

    [Test]
    public void TheDynamicMethodIsNamedAfterTheProgram()
    {
        var program = Assembler.Assemble("mov %r0, 41\nadd %r0, 1\nexit");
        var compiled = JitCompiler.Compile(program, HelperTable.Bench());
        Assert.That(compiled.Symbol, Is.EqualTo("bpf_prog_" + ProgramTag.Compute(program)));
        Assert.That(compiled.Entry.Method.Name, Is.EqualTo(compiled.Symbol));
        var named = JitCompiler.Compile(program, HelperTable.Bench(), null, null, "bpf_prog_0123456789abcdef_answer");
        Assert.That(named.Entry.Method.Name, Is.EqualTo("bpf_prog_0123456789abcdef_answer"));
        Assert.That(named.Run(), Is.EqualTo(42));
    }

    [Test]
    public void ACallbackIsNamedAfterItsProgramAndSubprogram()
    {
        // main (func#0) calls f (func#1); the bpf_loop callback cb is func#2, compiled as a method of its own.
        var program = MapPrograms.Assemble("""
            call local f
            stdw [%r10-8], 0
            mov %r1, 4
            ldfunc %r2, cb
            mov %r3, %r10
            add %r3, -8
            mov %r4, 0
            call 181
            exit
            f:
            mov %r0, 0
            exit
            cb:
            mov %r0, 0
            exit
            """);
        var compiled = JitCompiler.Compile(program, KernelHelpers.Table(), null, null, "bpf_prog_0123456789abcdef_loop");
        Assert.That(compiled.Run(), Is.EqualTo(4), "bpf_loop ran the callback 4 times");
        var closure = (JitClosure)compiled.Entry.Target!;
        var names = closure.KeepAlive.OfType<JitCompiler.CallbackForwarder>().Select(f => f.Target!.Method.Name).ToArray();
        Assert.That(names, Is.EqualTo(new[] { "bpf_prog_0123456789abcdef_loop_F2" }));
    }

    [Test]
    public void AnObjectProgramHasTheTagInspectShows()
    {
        var spec = ObjectFile.Load(Path.Combine(Paths.RepoRoot, "tests", "programs", "redir_port.o"));
        var program = spec.Programs["redir_port"];
        var maps = spec.Maps.Select(m => MapFactory.Create(ObjectMaps.Definition(m))).ToList();
        try
        {
            var bound = ProgramBinder.Bind(program, maps);
            string tag = ProgramTag.Compute(program.Instructions);
            Assert.That(bound.Tag, Is.EqualTo(tag), "the tag of the program as loaded, not of its live handles");
            var engine = new SymbolRecorder();
            var loaded = SkLookupProgram.Load(program.Name, bound, engine, null, null);
            Assert.That(loaded.Tag, Is.EqualTo(tag));
            Assert.That(tag, Is.EqualTo("604664dc6bd949c3"), "bpfjit inspect's TAG (and the kernel's, ProgramTagTests)");
            Assert.That(loaded.Symbol, Is.EqualTo($"bpf_prog_{tag}_redir_port"));
            Assert.That(engine.Symbol, Is.EqualTo(loaded.Symbol), "the engine is handed the symbol");
        }
        finally
        {
            foreach (var m in maps) m.Dispose();
        }
    }

    [Test]
    public void WithBtfFuncInfoTheFunctionsFullNameIsUsed()
    {
        // bpf_prog_ksym_set_name: with func info the kernel ignores the 15-character name for the BTF one.
        var code = Assembler.Assemble("mov %r0, 1\nexit");
        var spec = new ProgramSpec("a_rather_long_program_name", "sk_lookup", ProgramType.SkLookup, AttachType.SkLookup, code)
        {
            FuncInfos = [new BpfJit.Frontend.Btf.BtfFuncInfo(0, 1, "a_rather_long_program_name")],
        };
        string tag = ProgramTag.Compute(code);
        var bound = ProgramBinder.Bind(spec, []);
        Assert.That(bound.BtfName, Is.EqualTo("a_rather_long_program_name"));
        var engine = new SymbolRecorder();
        var loaded = SkLookupProgram.Load(spec.Name, bound, engine, null, null);
        Assert.That(loaded.Symbol, Is.EqualTo($"bpf_prog_{tag}_a_rather_long_program_name"));
        Assert.That(engine.Symbol, Is.EqualTo(loaded.Symbol));
        var plain = ProgramBinder.Bind(new ProgramSpec(spec.Name, "sk_lookup", ProgramType.SkLookup, AttachType.SkLookup, code), []);
        Assert.That(plain.BtfName, Is.Null);
        Assert.That(SkLookupProgram.Load(spec.Name, plain, engine, null, null).Symbol, Is.EqualTo($"bpf_prog_{tag}_a_rather_long_p"), "without BTF: aux->name, 15 characters");
        Assert.That(ProgramSymbol.OfBtf(tag, new string('f', 600)), Has.Length.EqualTo(511), "KSYM_NAME_LEN");
    }

    /// <summary>The JIT, recording the symbol it was asked to name the code.</summary>
    sealed class SymbolRecorder : IBpfEngine
    {
        public string? Symbol;
        public string Name => "jit";
        public BpfEntry Prepare(Instruction[] program, HelperTable helpers) => JitEngine.Instance.Prepare(program, helpers);
        public BpfEntry Prepare(Instruction[] program, HelperTable helpers, ProgramFacts? facts, string? symbol)
        {
            Symbol = symbol;
            return JitEngine.Instance.Prepare(program, helpers, facts, symbol);
        }
    }
}
