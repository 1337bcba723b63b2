using System.Reflection.Metadata;
using SequencePoint = ICSharpCode.Decompiler.DebugInfo.SequencePoint;
using System.Runtime.InteropServices;
using BpfJit.IlEmitter.Hosting;
using ICSharpCode.Decompiler;
using ICSharpCode.Decompiler.CSharp;
using ICSharpCode.Decompiler.CSharp.Syntax;
using ICSharpCode.Decompiler.CSharp.Transforms;
using ICSharpCode.Decompiler.DebugInfo;
using ICSharpCode.Decompiler.IL;
using ICSharpCode.Decompiler.Metadata;
using ICSharpCode.Decompiler.TypeSystem;

namespace BpfJit.IlEmitter.Dump;

/// <summary>Decompiles a saved program to C# with ICSharpCode.Decompiler.</summary>
internal static class CSharpDump
{
    /// <summary>
    /// The whole <c>BpfJit.Dump.BpfProgram</c> class of <paramref name="assembly"/> as C#; the locals of its
    /// <c>Run</c> method carry <paramref name="localNames"/> (the emitter's: <c>r0</c>..<c>r10</c>, <c>stack</c>) when given.
    /// </summary>
    public static string Decompile(byte[] assembly, IReadOnlyList<string>? localNames = null)
    {
        using var file = new PEFile(PersistedAssemblyHost.AssemblyName + ".dll", new MemoryStream(assembly));
        string here = Path.GetDirectoryName(typeof(JitClosure).Assembly.Location) ?? AppContext.BaseDirectory;
        var resolver = new UniversalAssemblyResolver(Path.Combine(here, "BpfJit.IlEmitter.dll"), false, file.DetectTargetFrameworkId());
        resolver.AddSearchDirectory(here);
        resolver.AddSearchDirectory(RuntimeEnvironment.GetRuntimeDirectory());
        // Without names the decompiler calls locals after their use (num, num2, result); the names come in as a
        // PDB's would, so that the C# reads in the eBPF registers like the IL listing does.
        var decompiler = new CSharpDecompiler(file, resolver, new DecompilerSettings { UseDebugSymbols = localNames != null });
        if (localNames != null)
        {
            decompiler.DebugInfoProvider = new LocalNames(file.Metadata, localNames);
            decompiler.AstTransforms.Add(new RegisterNames(localNames));
        }
        return decompiler.DecompileTypeAsString(new FullTypeName(PersistedAssemblyHost.TypeName));
    }

    /// <summary>
    /// Gives each local of <c>Run</c> its emitter name back after the decompiler named its variables: it keeps names
    /// from debug info only when they do not end in digits (r3 would come out r12), so the register names are put
    /// on the syntax tree, where each variable still knows the IL local it came from. A register that is also a
    /// parameter (r1 and r2 come in as arguments) and that the program writes lives apart from its argument: it is
    /// called by the register, and the argument <c>r1_in</c>, the value r1 came in with.
    /// </summary>
    sealed class RegisterNames(IReadOnlyList<string> names) : IAstTransform
    {
        public void Run(AstNode rootNode, TransformContext context)
        {
            foreach (var method in rootNode.DescendantsAndSelf.OfType<MethodDeclaration>().Where(m => m.Name == PersistedAssemblyHost.MethodName))
            {
                var locals = new HashSet<string>();
                foreach (var node in method.Descendants)
                {
                    switch (node)
                    {
                        case IdentifierExpression use when LocalName(use.GetILVariable()) is { } name:
                            use.Identifier = name;
                            locals.Add(name);
                            break;
                        case VariableInitializer declaration when LocalName(declaration.GetILVariable()) is { } name:
                            declaration.Name = name;
                            locals.Add(name);
                            break;
                    }
                }
                foreach (var parameter in method.Parameters.Where(p => p.Name is { } name && locals.Contains(name)))
                {
                    string name = parameter.Name!, renamed = name + "_in";
                    foreach (var use in method.Descendants.OfType<IdentifierExpression>())
                        if (use.Identifier == name && use.GetILVariable() is { Kind: VariableKind.Parameter }) use.Identifier = renamed;
                    parameter.Name = renamed;
                }
            }
        }

        string? LocalName(ILVariable? variable) =>
            variable is { Kind: VariableKind.Local, Index: int index } && index < names.Count ? names[index] : null;
    }

    /// <summary>The emitter's local names for the <c>Run</c> method, in the shape of a PDB's local scopes.</summary>
    sealed class LocalNames(MetadataReader metadata, IReadOnlyList<string> names) : IDebugInfoProvider
    {
        readonly MethodDefinitionHandle _run = metadata.MethodDefinitions.First(h =>
        {
            var method = metadata.GetMethodDefinition(h);
            return metadata.StringComparer.Equals(method.Name, PersistedAssemblyHost.MethodName)
                && metadata.GetTypeDefinition(method.GetDeclaringType()) is var type
                && metadata.StringComparer.Equals(type.Name, PersistedAssemblyHost.TypeName[(PersistedAssemblyHost.TypeName.LastIndexOf('.') + 1)..]);
        });

        public string Description => "local names of the BpfJit emitter";

        public string SourceFileName => PersistedAssemblyHost.AssemblyName + ".dll";

        public IList<SequencePoint> GetSequencePoints(MethodDefinitionHandle method) => [];

        public IList<Variable> GetVariables(MethodDefinitionHandle method) =>
            method == _run ? [.. names.Select((name, index) => new Variable(index, name))] : [];

        public bool TryGetName(MethodDefinitionHandle method, int index, out string name)
        {
            name = method == _run && index < names.Count ? names[index] : null!;
            return name != null;
        }

        public bool TryGetExtraTypeInfo(MethodDefinitionHandle method, int index, out PdbExtraTypeInfo extraTypeInfo)
        {
            extraTypeInfo = default;
            return false;
        }
    }
}
