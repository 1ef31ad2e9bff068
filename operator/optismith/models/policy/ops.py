"""The reviewed op lists: which TensorFlow ops a model may hold, which only in one place, and which never.

Reviewed against TensorFlow 2.21's registry (every op, internal ones included; `reviewed.py` keeps the names).
`tests/models/policy/test_registry.py` loads the running TensorFlow's registry and fails when an op that is
stateful, or stateless with file-, URL- or graph-like arguments, is in none of these lists, so a new
TensorFlow version cannot add a hole unnoticed. `is_stateful` is no safety signal on its own: ReadFile,
MatchingFiles, Abort, DatasetFromGraph, ImmutableConst and PyFuncStateless are all registered stateless.

    ALLOWED_STATEFUL  state that lives in the process and dies with it (variables, random numbers, hash tables
                      filled from tensors, in-memory queues and datasets, control flow whose callees are scanned)
    SAVER_OPS         checkpoint I/O: only inside the MetaGraph's own saver subgraph, on the path the loader feeds
    ASSET_TABLE_OPS   tables read from a file: only a file inside the model's own assets/
    ATTRIBUTE_GATES   harmless unless an attribute points them at a file, a descriptor, or raw memory
    REFUSED           ops that reach outside the model, by category; `spec.security.allowOps` may allow them,
                      except the embedded-program category (the scan cannot see what those run)
    REFUSED_FAMILIES  name patterns refused even before review (TPU, collectives, RPC, internal `_` ops)
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def names(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class Category:
    name: str
    reason: str
    allowable: bool = True  # may spec.security.allowOps allow an op of this category?


ALLOWED_STATEFUL: dict[str, str] = {}  # op -> why its state is harmless


def _allow(why: str, names: str) -> None:
    for name in names.split():
        ALLOWED_STATEFUL[name] = why


_allow("variables", """
    VarHandleOp ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp VarIsInitializedOp
    VariableShape DestroyResourceOp DisableCopyOnRead ResourceGather ResourceGatherNd ResourceScatterAdd
    ResourceScatterDiv ResourceScatterMax ResourceScatterMin ResourceScatterMul ResourceScatterNdAdd
    ResourceScatterNdMax ResourceScatterNdMin ResourceScatterNdSub ResourceScatterNdUpdate ResourceScatterSub
    ResourceScatterUpdate ResourceStridedSliceAssign ResourceCountUpTo Variable VariableV2 TemporaryVariable
    IsResourceHandleRefCounting MakeWeakResourceHandle ReadVariableXlaSplitND AssignVariableXlaConcatND""")
_allow("random numbers", """
    RandomUniform RandomUniformInt RandomStandardNormal TruncatedNormal ParameterizedTruncatedNormal RandomGamma
    RandomPoisson RandomPoissonV2 RandomShuffle RandomCrop Multinomial StatefulUniform StatefulUniformInt
    StatefulUniformFullInt StatefulStandardNormal StatefulStandardNormalV2 StatefulTruncatedNormal
    StatefulRandomBinomial RngSkip RngReadAndSkip NonDeterministicInts StatelessRandomGetAlg
    SampleDistortedBoundingBox SampleDistortedBoundingBoxV2 AnonymousRandomSeedGenerator AnonymousSeedGenerator
    DummySeedGenerator DeleteRandomSeedGenerator DeleteSeedGenerator AllCandidateSampler
    LogUniformCandidateSampler UniformCandidateSampler LearnedUnigramCandidateSampler
    ThreadUnsafeUnigramCandidateSampler""")
_allow("hash tables filled from tensors", """
    HashTable HashTableV2 MutableHashTable MutableHashTableV2 MutableHashTableOfTensors MutableHashTableOfTensorsV2
    MutableDenseHashTable MutableDenseHashTableV2 AnonymousHashTable AnonymousMutableHashTable
    AnonymousMutableHashTableOfTensors AnonymousMutableDenseHashTable LookupTableFindV2 LookupTableSizeV2
    LookupTableExportV2 LookupTableImportV2 LookupTableInsertV2 LookupTableRemoveV2 InitializeTableV2
    InitializeTableFromDataset""")
_allow("control flow and calls (the callees are scanned too)", """
    While If Case StatefulPartitionedCall RiscWhile XlaIf XlaWhile""")
_allow("checks, and logging to stderr", """
    Assert CheckNumerics CheckNumericsV2 Print Timestamp GuaranteeConst DeviceIndex DevicePlacementOp
    IsTensorFloat32Enabled GraphDefVersion SyncDevice""")
_allow("in-memory data structures", """
    TensorArray TensorArrayV2 TensorArrayV3 TensorArrayCloseV3 TensorArrayConcatV3 TensorArrayGatherV3
    TensorArrayGrad TensorArrayGradV2 TensorArrayGradV3 TensorArrayGradWithShape TensorArrayReadV3
    TensorArrayScatterV3 TensorArraySizeV3 TensorArraySplitV3 TensorArrayWriteV3 Stack StackV2 StackCloseV2
    StackPopV2 StackPushV2 FIFOQueue FIFOQueueV2 PaddingFIFOQueue PaddingFIFOQueueV2 PriorityQueue PriorityQueueV2
    RandomShuffleQueue RandomShuffleQueueV2 FakeQueue QueueCloseV2 QueueDequeueManyV2 QueueDequeueUpToV2
    QueueDequeueV2 QueueEnqueueManyV2 QueueEnqueueV2 QueueIsClosedV2 QueueSizeV2 Barrier ConditionalAccumulator
    SparseConditionalAccumulator ResourceConditionalAccumulator ResourceAccumulatorApplyGradient
    ResourceAccumulatorNumAccumulated ResourceAccumulatorSetGlobalStep ResourceAccumulatorTakeGradient
    MapClear MapIncompleteSize MapPeek MapSize MapStage MapUnstage MapUnstageNoKey OrderedMapClear
    OrderedMapIncompleteSize OrderedMapPeek OrderedMapSize OrderedMapStage OrderedMapUnstage
    OrderedMapUnstageNoKey Stage StageClear StagePeek StageSize Unstage MutexV2 MutexLock ConsumeMutexLock
    AddSparseToTensorsMap AddManySparseToTensorsMap TakeManySparseFromTensorsMap DeepCopy""")
_allow("training updates of the model's own variables", """
    ResourceApplyAdaMax ResourceApplyAdadelta ResourceApplyAdagrad ResourceApplyAdagradDA ResourceApplyAdagradV2
    ResourceApplyAdam ResourceApplyAdamWithAmsgrad ResourceApplyAddSign ResourceApplyCenteredRMSProp
    ResourceApplyFtrl ResourceApplyFtrlV2 ResourceApplyGradientDescent ResourceApplyKerasMomentum
    ResourceApplyMomentum ResourceApplyPowerSign ResourceApplyProximalAdagrad ResourceApplyProximalGradientDescent
    ResourceApplyRMSProp ResourceSparseApplyAdadelta ResourceSparseApplyAdagrad ResourceSparseApplyAdagradDA
    ResourceSparseApplyAdagradV2 ResourceSparseApplyCenteredRMSProp ResourceSparseApplyFtrl
    ResourceSparseApplyFtrlV2 ResourceSparseApplyKerasMomentum ResourceSparseApplyMomentum
    ResourceSparseApplyProximalAdagrad ResourceSparseApplyProximalGradientDescent ResourceSparseApplyRMSProp
    NegTrain""")
_allow("in-memory models (boosted trees)", """
    BoostedTreesCenterBias BoostedTreesCreateEnsemble BoostedTreesCreateQuantileStreamResource
    BoostedTreesDeserializeEnsemble BoostedTreesEnsembleResourceHandleOp BoostedTreesExampleDebugOutputs
    BoostedTreesFlushQuantileSummaries BoostedTreesGetEnsembleStates BoostedTreesPredict
    BoostedTreesQuantileStreamResourceAddSummaries BoostedTreesQuantileStreamResourceDeserialize
    BoostedTreesQuantileStreamResourceFlush BoostedTreesQuantileStreamResourceGetBucketBoundaries
    BoostedTreesQuantileStreamResourceHandleOp BoostedTreesSerializeEnsemble BoostedTreesTrainingPredict
    BoostedTreesUpdateEnsemble BoostedTreesUpdateEnsembleV2 IsBoostedTreesEnsembleInitialized
    IsBoostedTreesQuantileStreamResourceInitialized""")
_allow("GPU kernels of ordinary layers", """
    CudnnRNN CudnnRNNV2 CudnnRNNV3 CudnnRNNBackprop CudnnRNNBackpropV2 CudnnRNNBackpropV3""")
_allow("tf.data in memory (sources are tensors; the functions are scanned)", """
    RangeDataset TensorDataset TensorSliceDataset SparseTensorSliceDataset GeneratorDataset ReduceDataset
    DatasetToSingleElement RandomDataset RandomDatasetV2 ExperimentalRandomDataset ShuffleDatasetV2
    ShuffleDatasetV3 ShuffleAndRepeatDatasetV2 GroupByReducerDataset ExperimentalGroupByReducerDataset
    ThreadPoolDataset ExperimentalThreadPoolDataset ThreadPoolHandle ExperimentalThreadPoolHandle ListDataset
    GlobalShuffleDataset AnonymousIterator AnonymousIteratorV2 AnonymousIteratorV3 Iterator IteratorV2 MakeIterator
    IteratorGetNext IteratorGetNextAsOptional IteratorGetNextSync DeleteIterator OneShotIterator
    AnonymousMemoryCache DeleteMemoryCache DummyMemoryCache DummyIterationCounter AnonymousMultiDeviceIterator
    AnonymousMultiDeviceIteratorV3 MultiDeviceIterator MultiDeviceIteratorInit MultiDeviceIteratorGetNextFromShard
    DeleteMultiDeviceIterator IteratorGetDevice ExperimentalIteratorGetDevice GlobalIterId IteratorGetModelProto
    SerializeIterator StatsAggregatorHandle StatsAggregatorHandleV2 ExperimentalStatsAggregatorHandle
    StatsAggregatorSummary ExperimentalStatsAggregatorSummary SetStatsAggregatorDataset
    ExperimentalSetStatsAggregatorDataset""")

# --- categories of refusal ------------------------------------------------------------------------------------
FILES = Category("files", "reads or writes files on the host")
HOST = Category("host configuration", "changes process-wide file system settings (S3 endpoints, credentials)")
FILE_DATASETS = Category("datasets from files", "a tf.data source or sink backed by files or a database")
SERVICE_DATASETS = Category("datasets from services", "talks to a tf.data service over the network")
EMBEDDED = Category("embedded programs", "runs a graph or program carried in a string the scan cannot see into",
                    allowable=False)
CROSS_SESSION = Category("cross-session state", "reaches tensors or resources by string handle, outside the graph")
SUMMARIES = Category("summaries and debugger taps", "writes event files or databases, or streams tensors to a URL")
PYTHON = Category("Python", "calls Python code registered in the loading process")
PROCESS = Category("process", "ends or stalls the process (exit(0), abort, sleep)")
NETWORK = Category("network and cluster", "sends or receives tensors to other devices, tasks or RPC peers")
ACCELERATOR = Category("accelerator control", "TPU and XLA host transfers, compilation and system configuration")
TEST_ONLY = Category("test-only", "compiled in for TensorFlow's own tests")
INTERNAL = Category("internal", "an internal op of TensorFlow's own rewriters and runtime; exporters never write it")
UNREVIEWED = Category("unreviewed", "not on the reviewed lists (a new or custom op)")
STRUCTURE = Category("model structure", "the model is built to make TensorFlow touch the host", allowable=False)
PROCESS_MEMORY = Category("process memory", "reads memory the process never initialised")

# --- gated: legitimate in one place only (the scanner checks the place) ---------------------------------------
SAVER_RESTORE_ONLY = names("RestoreV2 Restore RestoreSlice")
SAVER_SAVE_ONLY = names("SaveV2 Save SaveSlices MergeV2Checkpoints")
SAVER_OPS = SAVER_RESTORE_ONLY | SAVER_SAVE_ONLY
ASSET_TABLE_OPS = names("InitializeTableFromTextFile InitializeTableFromTextFileV2")

# Variant and resource tensors decode registered C++ types or name resources outside the graph.
OPAQUE_DTYPES = frozenset({20, 21})  # DT_RESOURCE, DT_VARIANT


@dataclass(frozen=True)
class AttributeGate:
    attribute: str
    condition: str  # what the attribute must be, in words
    category: Category  # what a node that fails the gate is

    def passes(self, node: object) -> bool:
        attr = getattr(node, "attr", {})
        value = attr.get(self.attribute)
        return _GATE_CHECKS[self.attribute](value)


def _text(value: object) -> bytes:
    return bytes(getattr(value, "s", b"")) if value is not None else b""


_GATE_CHECKS = {
    "output_stream": lambda v: not _text(v).startswith(b"file://"),
    "descriptor_source": lambda v: _text(v) in (b"", b"local://") or _text(v).startswith(b"bytes://"),
    "vocab_file": lambda v: _text(v) == b"",
    "init": lambda v: v is not None and bool(v.b),
    "dtype": lambda v: v is not None and v.type not in OPAQUE_DTYPES,
    "out_type": lambda v: v is not None and v.type not in OPAQUE_DTYPES,
}

ATTRIBUTE_GATES: dict[str, AttributeGate] = {
    "PrintV2": AttributeGate("output_stream", "output_stream is stderr, stdout or the log, not a file://", FILES),
    "DecodeProtoV2": AttributeGate("descriptor_source", "descriptor_source is the linked-in pool or bytes://",
                                   FILES),
    "EncodeProto": AttributeGate("descriptor_source", "descriptor_source is the linked-in pool or bytes://", FILES),
    "FixedUnigramCandidateSampler": AttributeGate("vocab_file", "vocab_file is empty (unigrams given inline)",
                                                  FILES),
    "Empty": AttributeGate("init", "init is true (otherwise the tensor is uninitialised process memory)",
                           PROCESS_MEMORY),
    "Const": AttributeGate("dtype", "dtype is not resource or variant", STRUCTURE),
    "HostConst": AttributeGate("dtype", "dtype is not resource or variant", STRUCTURE),
    "ParseTensor": AttributeGate("out_type", "out_type is not resource or variant", STRUCTURE),
}

GATED = SAVER_OPS | ASSET_TABLE_OPS | frozenset(ATTRIBUTE_GATES)

# --- refused ----------------------------------------------------------------------------------------------------
REFUSED: dict[str, Category] = {}


def _refuse(category: Category, names: str) -> None:
    for name in names.split():
        REFUSED[name] = category


_refuse(FILES, """
    ReadFile WriteFile MatchingFiles ImmutableConst LoadAndRemapMatrix GenerateVocabRemapping Skipgram RecordInput
    DTensorRestoreV2 CalibrationStatisticsSaver DumpTensor FixedLengthRecordReader FixedLengthRecordReaderV2
    TextLineReader TextLineReaderV2 WholeFileReader WholeFileReaderV2 TFRecordReader TFRecordReaderV2 LMDBReader
    IdentityReader IdentityReaderV2 ReaderRead ReaderReadV2 ReaderReadUpTo ReaderReadUpToV2
    ReaderNumRecordsProduced ReaderNumRecordsProducedV2 ReaderNumWorkUnitsCompleted ReaderNumWorkUnitsCompletedV2
    ReaderReset ReaderResetV2 ReaderRestoreState ReaderRestoreStateV2 ReaderSerializeState ReaderSerializeStateV2""")
_refuse(HOST, "FileSystemSetConfiguration")
_refuse(FILE_DATASETS, """
    TFRecordDataset TFRecordDatasetV2 FixedLengthRecordDataset FixedLengthRecordDatasetV2 TextLineDataset CSVDataset
    CSVDatasetV2 ExperimentalCSVDataset LMDBDataset ExperimentalLMDBDataset SqlDataset ExperimentalSqlDataset
    MatchingFilesDataset ExperimentalMatchingFilesDataset CacheDataset CacheDatasetV2 SaveDataset SaveDatasetV2
    LoadDataset DatasetToTFRecord ExperimentalDatasetToTFRecord SnapshotDataset SnapshotDatasetV2
    SnapshotDatasetReader SnapshotNestedDatasetReader SnapshotChunkDataset ListSnapshotChunksDataset""")
_refuse(SERVICE_DATASETS, """
    DataServiceDataset DataServiceDatasetV2 DataServiceDatasetV3 DataServiceDatasetV4 RegisterDataset
    RegisterDatasetV2 DistributedSave""")
_refuse(EMBEDDED, """
    DatasetFromGraph MlirPassthroughOp XlaCallModule TPUCompile _TPUCompileMlir XlaCustomCall XlaCustomCallV2
    DeserializeIterator""")
_refuse(CROSS_SESSION, """
    IteratorFromStringHandle IteratorFromStringHandleV2 MultiDeviceIteratorFromStringHandle IteratorToStringHandle
    MultiDeviceIteratorToStringHandle GetSessionHandle GetSessionHandleV2 GetSessionTensor DeleteSessionTensor""")
_refuse(SUMMARIES, """
    CreateSummaryFileWriter CreateSummaryDbWriter SummaryWriter CloseSummaryWriter FlushSummaryWriter ImportEvent
    WriteSummary WriteRawProtoSummary WriteScalarSummary WriteHistogramSummary WriteImageSummary WriteAudioSummary
    WriteGraphSummary StatsAggregatorSetSummaryWriter DebugIdentity DebugIdentityV2 DebugIdentityV3 DebugNanCount
    DebugNumericSummary DebugNumericSummaryV2""")
_refuse(PYTHON, "PyFunc PyFuncStateless EagerPyFunc")
_refuse(PROCESS, "Abort SleepOp SleepIdentityOp SleepDataset ExperimentalSleepDataset")
_refuse(NETWORK, """
    Send Recv RemoteCall RpcServer RpcServerRegister RpcServerStart RpcClient RpcCall RpcCheckStatus RpcGetValue
    DeleteRpcFutureResource WorkerHeartbeat CollectiveReduce CollectiveReduceV2 CollectiveReduceV3
    CollectiveGather CollectiveGatherV2 CollectiveBcastSend CollectiveBcastSendV2 CollectiveBcastRecv
    CollectiveBcastRecvV2 CollectiveAllToAllV2 CollectiveAllToAllV3 CollectiveAssignGroupV2
    CollectiveInitializeCommunicator CollectiveReduceScatterV2 CollectivePermute NcclAllReduce NcclBroadcast
    NcclReduce AllToAll CrossReplicaSum""")
_refuse(ACCELERATOR, """
    TPUCompileSucceededAssert TPUExecute TPUExecuteAndUpdateVariables TPUOrdinalSelector TPURoundRobin
    TPUReshardVariables TPUDummyInput TPUAnnotateTensorsWithDynamicShape TPUCopyWithDynamicShape TPUPartitionedCall
    ConfigureDistributedTPU ShutdownDistributedTPU ConfigureAndInitializeGlobalTPU ShutdownTPUSystem
    DTensorSetGlobalTPUArray UpdateTaskIdAndGlobalCoreArray InfeedDequeue InfeedDequeueTuple InfeedEnqueue
    InfeedEnqueueTuple InfeedEnqueuePrelinearizedBuffer OutfeedDequeue OutfeedDequeueTuple OutfeedDequeueTupleV2
    OutfeedDequeueV2 OutfeedEnqueue OutfeedEnqueueTuple XlaSendToHost XlaRecvFromHost XlaHostCompute XlaSend
    XlaRecv XlaLaunch XlaLaunchV2 XlaDequantize XlaSparseCoreAdagrad XlaSparseCoreAdagradMomentum
    XlaSparseCoreAdam XlaSparseCoreFtrl XlaSparseCoreSgd XlaRecvTPUEmbeddingActivations
    XlaRecvTPUEmbeddingActivationsV2 XlaRecvTPUEmbeddingDeduplicationData XlaRecvTPUEmbeddingDeduplicationDataV2
    XlaSendTPUEmbeddingGradients XlaSendTPUEmbeddingGradientsV2 ConfigureTPUEmbedding ConfigureTPUEmbeddingHost
    ConfigureTPUEmbeddingMemory ConnectTPUEmbeddingHosts CollateTPUEmbeddingMemory FinalizeTPUEmbedding
    FinalizeTPUEmbeddingV2 IsTPUEmbeddingInitialized ExecuteTPUEmbeddingPartitioner RecvTPUEmbeddingActivations
    SendTPUEmbeddingGradients EnqueueTPUEmbeddingArbitraryTensorBatch EnqueueTPUEmbeddingBatch
    EnqueueTPUEmbeddingIntegerBatch EnqueueTPUEmbeddingRaggedTensorBatch EnqueueTPUEmbeddingSparseBatch
    EnqueueTPUEmbeddingSparseTensorBatch DynamicEnqueueTPUEmbeddingArbitraryTensorBatch
    DynamicEnqueueTPUEmbeddingRaggedTensorBatch LoadAllTPUEmbeddingParameters RetrieveAllTPUEmbeddingParameters
    ComputeDedupDataSize ComputeDedupDataSizeV2 ComputeDedupDataTupleMask ComputeDedupDataTupleMaskV2
    ConvertToCooTensor GetMinibatchSplitsWithPhysicalReplica GetMinibatchesInCsrWithPhysicalReplica
    StoreMinibatchStatisticsInFdo""")
_refuse(TEST_ONLY, """
    TestAttr ResourceCreateOp ResourceUsingOp ResourceInitializedOp StubResourceHandleOp DtypeWithDefaultOp
    RequiresOlderGraphVersion FuncAttr FuncListAttr""")

# Refused by name pattern: a new op of these families is refused before anyone reviews it.
REFUSED_FAMILIES: tuple[tuple[re.Pattern[str], Category], ...] = (
    (re.compile(r"^(Load|Retrieve)TPUEmbedding.*Parameters$"), ACCELERATOR),
    (re.compile(r"^TPU"), ACCELERATOR),
    (re.compile(r"^Collective"), NETWORK),
    (re.compile(r"^Rpc"), NETWORK),
    (re.compile(r"^_"), INTERNAL),
)

# Stateless ops whose inputs or attributes are named like files, URLs or graphs, reviewed as harmless: the
# "file-like" arguments are data, regular expressions, function names, or batching queues in the process.
REVIEWED_FILE_LIKE_STATELESS = names("""
    OptionsDataset ParseExample ParseExampleV2 ParseSequenceExample ParseSequenceExampleV2 ParseSingleExample
    ParseSingleSequenceExample DeserializeSparse DeserializeManySparse RegexFullMatch RegexReplace
    StaticRegexFullMatch StaticRegexReplace TensorSummaryV2 TPUReplicateMetadata Batch BatchFunction Unbatch
    UnbatchGrad CTCBeamSearchDecoder""")

FILE_LIKE_ARGUMENT = re.compile(
    r"(^|_)(file|files|filename|filenames|file_pattern|pattern|path|paths|prefix|dir|directory|shard_dir|logdir|"
    r"log_dir_path|url|urls|uri|address|protocol|host|port|graph_def|graph|mlir_module|module|descriptor_source|"
    r"memory_region_name|output_stream|vocab_file|ckpt_path|chunk_file|target_name|call_target_name|"
    r"serialized\w*|debug_urls|db_uri|shared_name)$")
